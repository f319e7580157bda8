package orchd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"syscall"
	"time"
)

// The protocol versions this SDK speaks (PROTOCOL.md §5).
const (
	ProtocolMin = 1
	ProtocolMax = 1
)

// Features an extension can declare in its hello (PROTOCOL.md §5, §6.2).
// The SDK implements both; an extension declares them with
// Extension.Features (nil: both).
const (
	// FeatureFiles: orchd may hand over config, state and outputs too
	// large for one line in files (§4.1); the SDK reads them.
	FeatureFiles = "files"
	// FeatureSession: several actions of an instance in one process
	// (§7.6). Handlers must then keep nothing from one action for the
	// next (no package-level state), but the files of the workdir.
	FeatureSession = "session"
)

// DefaultFeatures is what a nil Extension.Features declares.
var DefaultFeatures = []string{FeatureFiles, FeatureSession}

// DefaultCancelWait is how long the SDK waits, after a cancel, for the
// action's handler to return before it sends the failure result itself.
const DefaultCancelWait = 5 * time.Second

// Range is a range of protocol versions, Min <= Max.
type Range struct{ Min, Max int }

// Handler runs one action. It returns the result (see Changed, Unchanged,
// Done) or an error, which fails the action with the error's text as the
// summary; a ConfigErrors lists the configuration's errors by path
// (PROTOCOL.md §7.2), Retryable marks the failure as transient. ctx is
// cancelled when orchd cancels the action (a cancel message, SIGTERM,
// SIGINT, or the end of stdin): the handler should then stop, clean up,
// send the state of what exists and return (any error: the summary is
// "cancelled").
type Handler func(ctx context.Context, a *Action) (Result, error)

// Extension declares an extension: what its hello, describe and manifest
// say, and a handler per action. Apply is required; an action without a
// handler is not offered to orchd (PROTOCOL.md §7). describe is answered
// by the SDK from these fields.
type Extension struct {
	// Name is the extension type: the executable is orchd-ext-NAME.
	Name string
	// Version is the extension's dotted version ("0.1.0").
	Version string
	// Description is one line, for describe and the manifest.
	Description string
	// MinOrchdVersion is the oldest orchd it works with ("": any).
	MinOrchdVersion string
	// Protocol is the range of protocol versions the extension speaks;
	// the zero value is the SDK's range (ProtocolMin..ProtocolMax), which
	// it must lie within.
	Protocol Range
	// Features declared in the hello; nil means DefaultFeatures.
	Features []string
	// ConfigSchema is the JSON Schema describe shows for the config,
	// e.g. SchemaOf(Config{...}) or a map; nil: none.
	ConfigSchema any
	// ManifestExtra holds further manifest fields (PROTOCOL.md §2.3:
	// "secrets", "isolation", "tools", "argv_keys", "watch_keys") for
	// Manifest.
	ManifestExtra map[string]any

	Validate Handler
	Plan     Handler
	Apply    Handler
	Destroy  Handler

	// CancelWait is how long the SDK waits for a cancelled handler to
	// return before it sends the failure result "cancelled" itself and
	// exits (0: DefaultCancelWait). Keep it below the instances' grace
	// (10 s by default).
	CancelWait time.Duration
}

var typeName = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)

func (e *Extension) protocol() Range {
	if e.Protocol == (Range{}) {
		return Range{ProtocolMin, ProtocolMax}
	}
	return e.Protocol
}

func (e *Extension) features() []string {
	if e.Features == nil {
		return DefaultFeatures
	}
	return e.Features
}

func (e *Extension) handler(action string) Handler {
	switch action {
	case "validate":
		return e.Validate
	case "plan":
		return e.Plan
	case "apply":
		return e.Apply
	case "destroy":
		return e.Destroy
	}
	return nil
}

// Actions are the actions the extension implements, as its hello and
// describe list them: describe (the SDK's) and those with a handler.
func (e *Extension) Actions() []string {
	out := []string{"describe"}
	for _, a := range allActions[1:] {
		if e.handler(a) != nil {
			out = append(out, a)
		}
	}
	return out
}

// Check reports what is wrong with the declaration, or nil.
func (e *Extension) Check() error {
	p := e.protocol()
	switch {
	case !typeName.MatchString(e.Name):
		return fmt.Errorf("name %q must match [a-z][a-z0-9_-]*", e.Name)
	case !VersionValid(e.Version):
		return fmt.Errorf("version %q is not a dotted version", e.Version)
	case e.MinOrchdVersion != "" && !VersionValid(e.MinOrchdVersion):
		return fmt.Errorf("min orchd version %q is not a dotted version", e.MinOrchdVersion)
	case p.Min < ProtocolMin || p.Max > ProtocolMax || p.Min > p.Max:
		return fmt.Errorf("protocol %d..%d: this SDK speaks %d..%d", p.Min, p.Max, ProtocolMin, ProtocolMax)
	case e.Apply == nil:
		return errors.New("apply is required (PROTOCOL.md §7)")
	}
	for _, f := range e.features() {
		if f != FeatureFiles && f != FeatureSession {
			return fmt.Errorf("unknown feature %q", f)
		}
	}
	return nil
}

// Manifest is the manifest of PROTOCOL.md §2.3 for this declaration, to
// be written as orchd-ext-NAME.manifest.json (an extension built with the
// SDK prints it when started as "orchd-ext-NAME --manifest").
func (e *Extension) Manifest() map[string]any {
	p := e.protocol()
	m := map[string]any{
		"name":     e.Name,
		"version":  e.Version,
		"protocol": map[string]int{"min": p.Min, "max": p.Max},
	}
	if e.MinOrchdVersion != "" {
		m["min_orchd_version"] = e.MinOrchdVersion
	}
	if e.Description != "" {
		m["description"] = e.Description
	}
	for k, v := range e.ManifestExtra {
		m[k] = v
	}
	return m
}

// Main runs the extension as orchd starts it and exits with the protocol's
// exit status (PROTOCOL.md §8). It never returns.
//
// Before anything else it moves the protocol's stdin and stdout to private
// descriptors and points fd 0 at /dev/null and fd 1 at stderr: whatever
// the handlers (or the programs they start) print on stdout reaches
// orchd's log as stderr lines, never the protocol stream. It catches
// SIGTERM and SIGINT (they cancel the action) and SIGPIPE (a write to a
// closed pipe returns EPIPE).
//
// Started with arguments it prints a usage line on stderr and exits 2,
// except "--manifest", which prints the manifest (see Manifest) on stdout.
func Main(ext *Extension) {
	os.Exit(ext.main(os.Args[1:]))
}

func (e *Extension) main(args []string) int {
	if err := e.Check(); err != nil {
		fmt.Fprintf(os.Stderr, "orchd-ext-%s: invalid extension: %v\n", e.Name, err)
		return 1
	}
	if len(args) == 1 && args[0] == "--manifest" {
		b, _ := json.MarshalIndent(e.Manifest(), "", "  ")
		os.Stdout.Write(append(b, '\n'))
		return 0
	}
	if len(args) > 0 {
		fmt.Fprintf(os.Stderr, "orchd-ext-%s %s: an orchd extension (protocol %d); "+
			"it is started by orchd and speaks JSON lines on stdin/stdout (--manifest prints its manifest)\n",
			e.Name, e.Version, e.protocol().Max)
		return 2
	}
	in, out := redirectStdio()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	return e.serve(in, out, os.Stderr, sigs)
}

// Serve speaks the protocol on in and out until the action (or, in a
// session, the last action) is done and returns the exit status. Main
// calls it; it is exported for tests that drive an extension in-process
// (it installs no signal handler and leaves os.Stdin and os.Stdout alone).
func (e *Extension) Serve(in io.Reader, out io.Writer) int {
	if err := e.Check(); err != nil {
		fmt.Fprintf(os.Stderr, "orchd-ext-%s: invalid extension: %v\n", e.Name, err)
		return 1
	}
	return e.serve(in, out, os.Stderr, nil)
}
