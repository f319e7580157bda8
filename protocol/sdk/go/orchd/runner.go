package orchd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// inbound is one thing read from stdin: a parsed line, or the end.
type inbound struct {
	v   Verdict
	end bool  // end of input (or a read error: err)
	err error // the read error, nil at EOF
}

type runner struct {
	ext    *Extension
	out    io.Writer
	stderr io.Writer
	sigs   <-chan os.Signal
	inbox  chan inbound

	mu          sync.Mutex // serialises writes to out
	writeErr    error
	writeFailed chan struct{} // closed at the first failed write

	nextID  atomic.Int64
	pendMu  sync.Mutex
	pending map[int64]chan map[string]any

	nfiles atomic.Int64 // value files written (§4.1)
	ended  bool         // end of input seen
	queued []Verdict    // an action that came before its turn
}

func (r *runner) complain(format string, args ...any) {
	fmt.Fprintf(r.stderr, "%s: %s\n", r.ext.Name, fmt.Sprintf(format, args...))
}

// write sends one encoded line (with its '\n').
func (r *runner) write(line []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.writeLocked(line)
}

func (r *runner) writeError() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.writeErr
}

func (r *runner) writeLocked(line []byte) error {
	if r.writeErr != nil {
		return r.writeErr
	}
	if _, err := r.out.Write(line); err != nil {
		r.writeErr = fmt.Errorf("cannot write to orchd: %w", err)
		close(r.writeFailed)
		return r.writeErr
	}
	return nil
}

// read runs in its own goroutine: every line of stdin, parsed, goes to
// the inbox, but responses to requests, which go to their requester.
func (r *runner) read(in io.Reader) {
	br := bufio.NewReaderSize(in, 64*1024)
	var buf []byte
	for {
		buf = buf[:0]
		tooLong := false
		var err error
		for {
			var chunk []byte
			chunk, err = br.ReadSlice('\n')
			if !tooLong {
				buf = append(buf, chunk...)
				if len(buf) > MaxLine+1 || (len(buf) == MaxLine+1 && buf[MaxLine] != '\n') {
					tooLong, buf = true, buf[:0]
				}
			}
			if err != bufio.ErrBufferFull {
				break
			}
		}
		line := buf
		if len(line) > 0 && line[len(line)-1] == '\n' {
			line = line[:len(line)-1]
		}
		if tooLong || len(line) > 0 || err == nil {
			var v Verdict
			if tooLong {
				v = Verdict{Kind: ProtocolError, Error: fmt.Sprintf("line exceeds %d bytes", MaxLine)}
			} else {
				v = ParseLine(ToExt, line)
			}
			if v.Kind == Empty {
				// ignored (§4)
			} else if v.Kind != Valid || v.Type != "response" || !r.route(v.Message) {
				r.inbox <- inbound{v: v}
			}
		}
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			r.inbox <- inbound{end: true, err: err}
			return
		}
	}
}

// route hands a response to the request waiting for it.
func (r *runner) route(msg map[string]any) bool {
	id := intValue(msg["id"])
	r.pendMu.Lock()
	ch, ok := r.pending[id]
	delete(r.pending, id)
	r.pendMu.Unlock()
	if ok {
		ch <- msg
	} else {
		r.complain("a response to no pending request (id %d), ignored", id)
	}
	return true
}

// wait is the next message while no action runs. before names what is
// awaited ("hello", "the action"); code is the exit status when there is
// no message (ok false). After the hello (between), the end of input or a
// signal is orchd's way to stop an extension it has nothing (more) for:
// an action the hello does not list (§7), the end of a session (§7.6).
// The process then exits 0 without a word.
func (r *runner) wait(before string, between bool) (v Verdict, code int, ok bool) {
	if len(r.queued) > 0 {
		v, r.queued = r.queued[0], r.queued[1:]
		return v, 0, true
	}
	select {
	case in := <-r.inbox:
		switch {
		case in.end && between:
			return v, 0, false // the session is over (§7.6)
		case in.end && in.err != nil:
			r.complain("cannot read stdin: %v", in.err)
			return v, 1, false
		case in.end:
			r.complain("protocol error: end of input before %s", before)
			return v, 1, false
		case in.v.Kind == NonProtocol:
			r.complain("protocol error: input is not a JSON object")
			return v, 1, false
		case in.v.Kind != Valid:
			r.complain("protocol error: %s", in.v.Error)
			return v, 1, false
		}
		return in.v, 0, true
	case s := <-r.sigs:
		if between {
			return v, 0, false
		}
		r.complain("interrupted (%v) before %s", s, before)
		return v, 1, false
	}
}

func (e *Extension) serve(in io.Reader, out io.Writer, stderr io.Writer, sigs <-chan os.Signal) int {
	r := &runner{
		ext: e, out: out, stderr: stderr, sigs: sigs,
		inbox:       make(chan inbound, 16),
		writeFailed: make(chan struct{}),
		pending:     map[int64]chan map[string]any{},
	}
	go r.read(in)

	// the handshake (§5)
	v, code, ok := r.wait("hello", false)
	if !ok {
		return code
	}
	if v.Type != "hello" {
		r.complain("protocol error: expected hello, got %s", v.Type)
		return 1
	}
	p := v.Message["protocol"].(map[string]any)
	omin, omax := intValue(p["min"]), intValue(p["max"])
	mine := e.protocol()
	chosen := min(omax, int64(mine.Max))
	if chosen < max(omin, int64(mine.Min)) {
		text := fmt.Sprintf("extension %s speaks protocol %d..%d, orchd offers %d..%d",
			e.Name, mine.Min, mine.Max, omin, omax)
		if line, err := encodeLine(errorMsg{Type: "error", Message: text, Retryable: new(bool)}); err == nil {
			r.write(line)
		}
		r.complain("%s", text)
		return 1
	}
	hello := helloMsg{Type: "hello", Protocol: chosen, Name: e.Name, Version: e.Version,
		MinOrchdVersion: e.MinOrchdVersion, Actions: e.Actions(), Features: e.features()}
	line, err := encodeLine(hello)
	if err == nil {
		err = r.write(line)
	}
	if err != nil {
		r.complain("cannot send hello: %v", err)
		return 1
	}
	session := contains(e.features(), FeatureSession)

	v, code, ok = r.wait("the action", true)
	if !ok {
		return code
	}
	for {
		if v.Type != "action" {
			if v.Type == "cancel" {
				r.complain("cancelled before the action")
			} else {
				r.complain("protocol error: expected action, got %s", v.Type)
			}
			return 1
		}
		code, more := r.runAction(v.Message)
		if !more || !session {
			return code
		}
		// a session (§7.6): the next action, or the end of input
		v, code, ok = r.wait("the next action", true)
		if !ok {
			return code
		}
		if v.Type == "cancel" {
			return 0
		}
	}
}

// outcome is what a handler returned.
type outcome struct {
	res      Result
	err      error
	panicked any
	stack    []byte
}

// CancelError is the cause of a cancelled action's context
// (context.Cause): Reason is "interrupted" or "timeout" (orchd's cancel
// message; PROTOCOL.md §9), "SIGTERM" or "SIGINT" (a signal), "eof" (orchd
// closed stdin: it is gone), or "protocol error" / "stdout closed". It
// matches context.Canceled with errors.Is.
type CancelError struct{ Reason string }

func (e *CancelError) Error() string        { return "cancelled (" + e.Reason + ")" }
func (e *CancelError) Is(target error) bool { return target == context.Canceled }

// runAction runs one action to its result. more: the process may take
// another action (a session); code: the exit status otherwise.
func (r *runner) runAction(msg map[string]any) (code int, more bool) {
	a := newAction(r, msg)
	if err := a.load(); err != nil {
		a.finish(Result{}, err)
		return 0, true
	}
	if a.Name == "describe" {
		r.describe(a)
		return 0, true
	}
	h := r.ext.handler(a.Name)
	if h == nil {
		a.finish(Result{}, errors.New("unsupported action"))
		return 0, true
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	done := make(chan outcome, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- outcome{panicked: p, stack: debug.Stack()}
			}
		}()
		res, err := h(ctx, a)
		done <- outcome{res: res, err: err}
	}()

	var giveUp <-chan time.Time
	cancelled, signals, told := false, 0, false
	code = 0
	doCancel := func(reason string, tell string) {
		if tell != "" && !told {
			// the cancel message and orchd's SIGTERM come together,
			// in either order: each says so once
			told = tell == "message"
			if told {
				a.Log(LevelWarning, "cancel received (%s): stopping", reason)
			} else {
				a.Log(LevelWarning, "%s received: stopping", reason)
			}
		}
		if cancelled {
			return
		}
		cancelled = true
		cancel(&CancelError{Reason: reason})
		wait := r.ext.CancelWait
		if wait <= 0 {
			wait = DefaultCancelWait
		}
		giveUp = time.After(wait)
	}
	inbox, writeFailed := r.inbox, r.writeFailed
	for {
		select {
		case o := <-done:
			if o.panicked != nil {
				r.complain("panic: %v\n%s", o.panicked, o.stack)
				a.finish(Result{}, fmt.Errorf("panic: %v", o.panicked))
				return 1, false
			}
			if cancelled && o.err != nil && !isConfigErrors(o.err) {
				if !errors.Is(o.err, context.Canceled) {
					a.Log(LevelWarning, "%v", o.err)
				}
				o.err = errCancelled
			}
			a.finish(o.res, o.err)
			if r.writeError() != nil {
				return 1, false
			}
			return code, code == 0 && !cancelled && !r.ended
		case in := <-inbox:
			switch {
			case in.end:
				inbox = nil // nothing more will come
				r.ended = true
				if in.err != nil {
					r.complain("cannot read stdin: %v", in.err)
				}
				doCancel("eof", "") // orchd is gone (§9.4)
			case in.v.Kind == Valid && in.v.Type == "cancel":
				reason := in.v.Message["reason"].(string)
				if reason != "timeout" {
					reason = "interrupted" // unknown values too (§6.1)
				}
				doCancel(reason, "message")
			case in.v.Kind == Valid && in.v.Type == "action" && len(r.queued) == 0:
				// orchd sends the next action after the result; one
				// written ahead (by hand: printf ... | orchd-ext-X)
				// waits for its turn
				r.queued = append(r.queued, in.v)
			case in.v.Kind == Valid:
				r.complain("protocol error: unexpected %s during the action", in.v.Type)
				code = 1
				doCancel("protocol error", "")
			case in.v.Kind == NonProtocol:
				r.complain("protocol error: input is not a JSON object")
				code = 1
				doCancel("protocol error", "")
			default:
				r.complain("protocol error: %s", in.v.Error)
				code = 1
				doCancel("protocol error", "")
			}
		case s := <-r.sigs:
			signals++
			if signals > 1 {
				a.finish(Result{}, errCancelled) // a second signal: at once
				return code, false
			}
			name := "SIGTERM"
			if s == os.Interrupt {
				name = "SIGINT"
			}
			doCancel(name, "signal")
		case <-writeFailed:
			writeFailed = nil
			r.complain("%v", r.writeError())
			doCancel("stdout closed", "")
		case <-giveUp:
			a.Log(LevelWarning, "the action did not stop within %v after the cancel", r.cancelWait())
			a.finish(Result{}, errCancelled)
			return code, false
		}
	}
}

func (r *runner) cancelWait() time.Duration {
	if r.ext.CancelWait > 0 {
		return r.ext.CancelWait
	}
	return DefaultCancelWait
}

var errCancelled = errors.New("cancelled")

func (r *runner) describe(a *Action) {
	e := r.ext
	d := describeBody{Type: e.Name, Version: e.Version, Actions: e.Actions(),
		Description: e.Description, Config: e.ConfigSchema}
	a.end(resultMsg{Type: "result", Status: "success", Changed: boolPtr(false),
		Summary: e.Name + " " + e.Version, Describe: &d})
}

func boolPtr(b bool) *bool { return &b }
