package orchd

import (
	"errors"
	"fmt"
)

// Result is what a successful handler returns: a one-line summary for
// orchd's report and whether something changed (apply, destroy) or would
// change (plan). Build it with Changed, Unchanged or Done.
type Result struct {
	// Summary is one line shown in orchd's report ("" : none).
	Summary string
	changed int8 // 0: unknown, 1: no, 2: yes
}

func summary(format string, args []any) string {
	if len(args) == 0 {
		return format
	}
	return fmt.Sprintf(format, args...)
}

// Changed: something changed (apply, destroy) or would change (plan).
func Changed(format string, args ...any) Result { return Result{summary(format, args), 2} }

// Unchanged: nothing changed, or nothing would change (plan); for apply
// and destroy this is what an idempotent second run reports.
func Unchanged(format string, args ...any) Result { return Result{summary(format, args), 1} }

// ChangedIf is Changed when changed is true, else Unchanged.
func ChangedIf(changed bool, format string, args ...any) Result {
	if changed {
		return Changed(format, args...)
	}
	return Unchanged(format, args...)
}

// Done: the action succeeded and whether it changed anything is unknown
// (orchd counts a plan like that as a possible change).
func Done(format string, args ...any) Result { return Result{summary(format, args), 0} }

// IsChanged reports the result's change flag and whether it is known.
func (r Result) IsChanged() (changed, known bool) { return r.changed == 2, r.changed != 0 }

func (r Result) changedPtr() *bool {
	if r.changed == 0 {
		return nil
	}
	return boolPtr(r.changed == 2)
}

type retryableError struct{ err error }

func (e *retryableError) Error() string { return e.err.Error() }
func (e *retryableError) Unwrap() error { return e.err }

// Retryable marks err as transient: the action's failure tells orchd that
// a retry may succeed (an error message with retryable true, PROTOCOL.md
// §6.2, before the failure result). Retryable(nil) is nil.
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return &retryableError{err}
}

// IsRetryable reports whether err was marked with Retryable.
func IsRetryable(err error) bool {
	var r *retryableError
	return errors.As(err, &r)
}
