package orchd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"unicode/utf8"
)

// Action is one action orchd asked for, and the way to answer it. Its
// methods are safe for concurrent use; after the action's result they
// send nothing and return ErrEnded.
type Action struct {
	// Name is "validate", "plan", "apply" or "destroy".
	Name string
	// Instance is the instance's name ("web"); Stack its stack in orchd's
	// state engine (informational).
	Instance, Stack string
	// Workdir is the instance's private working directory, the process's
	// current directory. It is removed when the action ends: what must
	// outlive it goes into the state or the outputs.
	Workdir string
	// Config is the instance's configuration (use DecodeConfig). Values
	// are map[string]any, []any, string, json.Number, bool and nil.
	Config map[string]any
	// State is the last state the extension sent for this instance
	// (JSON "null" on the first run and after destroy; use DecodeState).
	State json.RawMessage
	// Outputs are the instance's previous outputs, secret ones in clear.
	Outputs map[string]any

	r     *runner
	msg   map[string]any
	ended bool // guarded by r.mu
}

// ErrEnded is returned by the methods of an Action whose result was sent.
var ErrEnded = errors.New("orchd: the action has ended")

// errTooLong: a message longer than a line.
var errTooLong = fmt.Errorf("the message would exceed %d bytes", MaxLine)

// errTooDeep: a value nested deeper than orchd reads.
var errTooDeep = fmt.Errorf("nested deeper than %d levels", MaxDepth)

func newAction(r *runner, msg map[string]any) *Action {
	a := &Action{r: r, msg: msg, Name: msg["action"].(string)}
	a.Instance, _ = msg["instance"].(string)
	a.Stack, _ = msg["stack"].(string)
	a.Workdir, _ = msg["workdir"].(string)
	return a
}

// load reads the values orchd handed over in files (§4.1).
func (a *Action) load() error {
	for _, name := range []string{"config", "state", "outputs"} {
		path, ok := a.msg[name+"_file"].(string)
		if !ok {
			continue
		}
		v, err := readValueFile(path)
		if err != nil {
			return fmt.Errorf("cannot read the action's %s_file: %w", name, err)
		}
		if _, isObj := v.(map[string]any); name != "state" && !isObj {
			return fmt.Errorf("the action's %s_file '%s' does not hold an object", name, path)
		}
		a.msg[name] = v
	}
	a.Config, _ = a.msg["config"].(map[string]any)
	if a.Config == nil {
		a.Config = map[string]any{}
	}
	a.Outputs, _ = a.msg["outputs"].(map[string]any)
	if a.Outputs == nil {
		a.Outputs = map[string]any{}
	}
	a.State, _ = json.Marshal(a.msg["state"]) // "null" when absent
	return nil
}

// readValueFile reads a value file of §4.1.
func readValueFile(path string) (any, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("'%s' is not a regular file", path)
	}
	if st.Size() > MaxFileValue {
		return nil, fmt.Errorf("'%s' is larger than %d bytes (%d)", path, MaxFileValue, st.Size())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	v, err := decodeJSON(data, MaxDepth, MaxFileValues)
	switch {
	case errors.As(err, new(errDepth)):
		return nil, fmt.Errorf("'%s': nested deeper than %d levels", path, MaxDepth)
	case errors.As(err, new(errTooManyValues)):
		return nil, fmt.Errorf("'%s' holds more than %d JSON values", path, MaxFileValues)
	case err != nil:
		return nil, fmt.Errorf("'%s': not JSON: %v", path, err)
	}
	return v, nil
}

// DecodeConfig decodes the config into the struct dst points to; see
// Decode. It returns ConfigErrors: return it from the handler as is.
func (a *Action) DecodeConfig(dst any) error { return Decode(a.Config, dst) }

// HasState reports whether there is a previous state (not null).
func (a *Action) HasState() bool { return !bytes.Equal(a.State, []byte("null")) }

// DecodeState decodes the previous state into dst with encoding/json. It
// returns false (and leaves dst alone) when there is none.
func (a *Action) DecodeState(dst any) (bool, error) {
	if !a.HasState() {
		return false, nil
	}
	return true, json.Unmarshal(a.State, dst)
}

// --- messages --------------------------------------------------------------

type helloMsg struct {
	Type            string   `json:"type"`
	Protocol        int64    `json:"protocol"`
	Name            string   `json:"name"`
	Version         string   `json:"version"`
	MinOrchdVersion string   `json:"min_orchd_version,omitempty"`
	Actions         []string `json:"actions"`
	Features        []string `json:"features"`
}

type logMsg struct {
	Type    string `json:"type"`
	Level   Level  `json:"level"`
	Message string `json:"message"`
}

type progressMsg struct {
	Type    string   `json:"type"`
	Message string   `json:"message"`
	Percent *float64 `json:"percent,omitempty"`
}

type outputMsg struct {
	Type   string          `json:"type"`
	Key    string          `json:"key"`
	Value  json.RawMessage `json:"value,omitempty"`
	File   string          `json:"file,omitempty"`
	Secret bool            `json:"secret"`
}

type stateMsg struct {
	Type   string          `json:"type"`
	State  json.RawMessage `json:"state,omitempty"`
	File   string          `json:"file,omitempty"`
	Secret bool            `json:"secret,omitempty"`
}

type maskMsg struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

type errorMsg struct {
	Type      string `json:"type"`
	Message   string `json:"message"`
	Retryable *bool  `json:"retryable,omitempty"`
}

type describeBody struct {
	Type        string   `json:"type"`
	Version     string   `json:"version"`
	Actions     []string `json:"actions"`
	Description string   `json:"description,omitempty"`
	Config      any      `json:"config,omitempty"`
}

type resultMsg struct {
	Type     string        `json:"type"`
	Status   string        `json:"status"`
	Changed  *bool         `json:"changed,omitempty"`
	Summary  string        `json:"summary,omitempty"`
	Describe *describeBody `json:"describe,omitempty"`
	Errors   []ConfigError `json:"errors,omitempty"`
}

// marshal is compact JSON without HTML escaping, without a newline.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// jsoncDepth is the depth of the deepest value of v, v being 0. orchd's
// JSON parser (json-c) refuses a value at depth 64 or more, a scalar
// included, where PROTOCOL.md counts containers only: 64 nested arrays
// with a number in the innermost one are 64 levels for the text and the
// vectors, but orchd rejects them. The SDK keeps to the stricter count.
func jsoncDepth(v any) int {
	best := 0
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			best = max(best, 1+jsoncDepth(e))
		}
	case []any:
		for _, e := range x {
			best = max(best, 1+jsoncDepth(e))
		}
	}
	return best
}

// encodeLine encodes one message as a protocol line (with its '\n') and
// checks it with the SDK's own parser: what the SDK sends is always valid.
func encodeLine(m any) ([]byte, error) {
	b, err := marshal(m)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxLine {
		return nil, errTooLong
	}
	v := ParseLine(FromExt, b)
	switch {
	case v.Kind == ProtocolError && v.Error == fmt.Sprintf("message nested deeper than %d levels", MaxDepth):
		return nil, errTooDeep
	case v.Kind != Valid:
		return nil, fmt.Errorf("orchd: not a valid message (%s): %s", v, b)
	case jsoncDepth(v.Message) > MaxDepth-1:
		return nil, errTooDeep
	}
	return append(b, '\n'), nil
}

// send writes one message unless the action has ended.
func (a *Action) send(m any) error {
	line, err := encodeLine(m)
	if err != nil {
		return err
	}
	a.r.mu.Lock()
	defer a.r.mu.Unlock()
	if a.ended {
		return ErrEnded
	}
	return a.r.writeLocked(line)
}

// end sends the result (the first call only).
func (a *Action) end(m resultMsg) {
	line, err := encodeLine(m)
	if errors.Is(err, errTooLong) {
		if len(m.Errors) > 100 {
			m.Errors = m.Errors[:100]
		}
		m.Summary = truncate(m.Summary, 4096)
		if line, err = encodeLine(m); errors.Is(err, errTooLong) {
			m.Errors = nil
			line, err = encodeLine(m)
		}
	}
	if err != nil {
		a.r.complain("cannot encode the result: %v", err)
		line, _ = encodeLine(resultMsg{Type: "result", Status: "failure", Summary: "the extension could not encode its result"})
	}
	a.r.mu.Lock()
	defer a.r.mu.Unlock()
	if a.ended {
		return
	}
	a.ended = true
	a.r.writeLocked(line)
}

// finish ends the action with the handler's outcome.
func (a *Action) finish(res Result, err error) {
	m := resultMsg{Type: "result", Status: "success", Summary: res.Summary, Changed: res.changedPtr()}
	if err == nil {
		if a.Name == "validate" {
			if m.Summary == "" {
				m.Summary = "configuration is valid"
			}
			if m.Changed == nil {
				m.Changed = boolPtr(false)
			}
		}
		a.end(m)
		return
	}
	m.Status = "failure"
	m.Summary = err.Error()
	if ce := configErrors(err); ce != nil {
		for _, e := range ce {
			a.Log(LevelError, "%s", e.Error())
		}
		m.Errors = ce
		if m.Changed == nil {
			m.Changed = boolPtr(false)
		}
	}
	if IsRetryable(err) {
		a.send(errorMsg{Type: "error", Message: err.Error(), Retryable: boolPtr(true)})
	}
	a.end(m)
}

// configErrors is the ConfigErrors err is or wraps, or nil.
func configErrors(err error) ConfigErrors {
	var ce ConfigErrors
	var pce *ConfigErrors
	if errors.As(err, &pce) && pce != nil {
		return *pce
	}
	errors.As(err, &ce)
	return ce
}

func isConfigErrors(err error) bool { return configErrors(err) != nil }

// truncate cuts s to at most n bytes (on a character boundary) plus "...".
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// sendText sends a message with a text field, cut when the line would be
// too long.
func (a *Action) sendText(text string, build func(string) any) error {
	err := a.send(build(text))
	for tries := 0; errors.Is(err, errTooLong) && tries < 8; tries++ {
		// JSON escaping at most sextuples a byte
		text = truncate(text, len(text)/2)
		err = a.send(build(text))
	}
	return err
}

// --- logging and progress ---------------------------------------------------

// Level is the level of a log line.
type Level string

// The levels of PROTOCOL.md §6.2.
const (
	LevelDebug   Level = "debug"
	LevelInfo    Level = "info"
	LevelWarning Level = "warning"
	LevelError   Level = "error"
)

// Log sends a log line to orchd at level (fmt.Sprintf(format, args...);
// format alone without args). orchd shows it under the instance's name
// and masks secrets in it.
func (a *Action) Log(level Level, format string, args ...any) error {
	switch level {
	case LevelDebug, LevelInfo, LevelWarning, LevelError:
	default:
		level = LevelInfo
	}
	return a.sendText(summary(format, args), func(s string) any {
		return logMsg{Type: "log", Level: level, Message: s}
	})
}

// Progress tells orchd what is happening, with a percentage from 0 to 100
// (a negative percent: none).
func (a *Action) Progress(percent float64, format string, args ...any) error {
	var p *float64
	if percent >= 0 && !math.IsNaN(percent) {
		percent = math.Min(percent, 100)
		p = &percent
	}
	return a.sendText(summary(format, args), func(s string) any {
		return progressMsg{Type: "progress", Message: s, Percent: p}
	})
}

// Mask tells orchd never to print value (replaced by *** in every line of
// the run). Send it before anything that may print the value.
func (a *Action) Mask(value string) error {
	return a.send(maskMsg{Type: "mask", Value: value})
}

// --- outputs and state --------------------------------------------------------

// Output sends an output: a value other instances can use
// (${{ TYPE.NAME.outputs.KEY }}). Any value encoding/json encodes will do.
// A later output with the same key replaces the earlier; orchd keeps the
// outputs of a successful apply only. Keys matching [A-Za-z_][A-Za-z0-9_]*
// are recommended (others cannot all be referenced). A value too large for
// one line travels in a file of the workdir (§4.1), up to 64 MiB.
func (a *Action) Output(key string, value any) error { return a.output(key, value, false) }

// SecretOutput sends an output orchd stores encrypted and never prints
// (it masks the value from now on). orchd then needs a passphrase; say so
// in the manifest ("secrets": true in Extension.ManifestExtra).
func (a *Action) SecretOutput(key string, value any) error { return a.output(key, value, true) }

func (a *Action) output(key string, value any, secret bool) error {
	if key == "" {
		return errors.New("orchd: an output key must not be empty")
	}
	raw, err := marshal(value)
	if err != nil {
		return fmt.Errorf("output '%s': %w", key, err)
	}
	err = a.send(outputMsg{Type: "output", Key: key, Value: raw, Secret: secret})
	if errors.Is(err, errTooLong) {
		var name string
		if name, err = a.writeValueFile(raw); err == nil {
			err = a.send(outputMsg{Type: "output", Key: key, File: name, Secret: secret})
		}
	}
	if err != nil && !errors.Is(err, ErrEnded) {
		return fmt.Errorf("output '%s': %w", key, err)
	}
	return err
}

// SetState sends the instance's new state: orchd stores it (for apply and
// destroy, even when they fail) and hands it back as Action.State next
// time. The last one wins; nil erases the state (what destroy sends).
func (a *Action) SetState(state any) error { return a.setState(state, false) }

// SetSecretState is SetState for a state that may hold secrets: orchd
// stores it encrypted and never prints it (it needs a passphrase).
func (a *Action) SetSecretState(state any) error { return a.setState(state, true) }

func (a *Action) setState(state any, secret bool) error {
	raw, err := marshal(state)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	err = a.send(stateMsg{Type: "state", State: raw, Secret: secret})
	if errors.Is(err, errTooLong) {
		var name string
		if name, err = a.writeValueFile(raw); err == nil {
			err = a.send(stateMsg{Type: "state", File: name, Secret: secret})
		}
	}
	if err != nil && !errors.Is(err, ErrEnded) {
		return fmt.Errorf("state: %w", err)
	}
	return err
}

// writeValueFile writes a value too large for a line into a file of the
// workdir and returns its name, relative to the workdir (§4.1).
func (a *Action) writeValueFile(raw []byte) (string, error) {
	if len(raw) > MaxFileValue {
		return "", fmt.Errorf("%d bytes: larger than the protocol carries (at most %d bytes)", len(raw), MaxFileValue)
	}
	v, err := decodeJSON(raw, MaxDepth, MaxFileValues)
	switch {
	case errors.As(err, new(errDepth)):
		return "", errTooDeep
	case errors.As(err, new(errTooManyValues)):
		return "", fmt.Errorf("more than %d JSON values: larger than orchd reads", MaxFileValues)
	case err != nil:
		return "", err
	case jsoncDepth(v) > MaxDepth-1:
		return "", errTooDeep
	case a.Workdir == "":
		return "", errors.New("too large for a line, and no workdir to hand it over in a file")
	}
	name := fmt.Sprintf(".orchd-value-%d.json", a.r.nfiles.Add(1))
	if err := os.WriteFile(filepath.Join(a.Workdir, name), raw, 0o600); err != nil {
		return "", err
	}
	return name, nil
}
