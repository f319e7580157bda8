package orchd

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Limits of the protocol (PROTOCOL.md §4, §4.1).
const (
	MaxLine       = 1048576  // bytes of one line, without its '\n'
	MaxDepth      = 64       // nesting levels; the message object is level 1
	MaxFileValue  = 67108864 // bytes of a value handed over in a file
	MaxFileValues = 1000000  // JSON values in such a file
)

// Direction is the way a line travels.
type Direction int

const (
	// ToExt: a line orchd writes on the extension's stdin.
	ToExt Direction = iota + 1
	// FromExt: a line an extension writes on its stdout.
	FromExt
)

// VerdictKind is what a parser makes of one line (vectors/README.md).
type VerdictKind int

const (
	// Empty: an empty or whitespace-only line, ignored.
	Empty VerdictKind = iota
	// NonProtocol: not a JSON object (not JSON, invalid UTF-8, trailing
	// data, an array, a string...). orchd logs such a stdout line as a
	// warning; it is not an error.
	NonProtocol
	// Valid: a valid message of type Verdict.Type for that direction.
	Valid
	// ProtocolError: a protocol error; Verdict.Error is the exact text.
	ProtocolError
)

// Verdict is the outcome of ParseLine.
type Verdict struct {
	Kind VerdictKind
	// Type is the message type (Valid).
	Type string
	// Error is the exact protocol error text (ProtocolError), or why the
	// line is not a JSON object (NonProtocol; informational only).
	Error string
	// Message is the decoded message (Valid): values are map[string]any,
	// []any, string, json.Number, bool and nil.
	Message map[string]any
}

// String renders the verdict as the vectors write it: "empty",
// "non-protocol", "valid:TYPE" or "error:TEXT".
func (v Verdict) String() string {
	switch v.Kind {
	case Empty:
		return "empty"
	case NonProtocol:
		return "non-protocol"
	case Valid:
		return "valid:" + v.Type
	}
	return "error:" + v.Error
}

func isLineSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// ParseLine parses one raw line (without its terminating '\n') travelling
// in direction dir and returns the verdict PROTOCOL.md §4 and §6 give it.
func ParseLine(dir Direction, line []byte) Verdict {
	if len(line) > MaxLine {
		return Verdict{Kind: ProtocolError, Error: fmt.Sprintf("line exceeds %d bytes", MaxLine)}
	}
	start, end := 0, len(line)
	for start < end && isLineSpace(line[start]) {
		start++
	}
	for end > start && isLineSpace(line[end-1]) {
		end--
	}
	if start == end {
		return Verdict{Kind: Empty}
	}
	s := line[start:end]
	if bytes.IndexByte(s, 0) >= 0 {
		return Verdict{Kind: NonProtocol, Error: "contains a NUL byte"}
	}
	v, err := decodeJSON(s, MaxDepth, 0)
	if err != nil {
		var depth errDepth
		if errors.As(err, &depth) {
			return Verdict{Kind: ProtocolError,
				Error: fmt.Sprintf("message nested deeper than %d levels", MaxDepth)}
		}
		return Verdict{Kind: NonProtocol, Error: "not JSON: " + err.Error()}
	}
	msg, ok := v.(map[string]any)
	if !ok {
		return Verdict{Kind: NonProtocol, Error: "not a JSON object"}
	}
	t, err := ValidateMessage(dir, msg)
	if err != nil {
		return Verdict{Kind: ProtocolError, Error: err.Error()}
	}
	return Verdict{Kind: Valid, Type: t, Message: msg}
}

// Message types, by direction (PROTOCOL.md §6).
var (
	typesToExt   = []string{"hello", "action", "cancel", "response"}
	typesFromExt = []string{"hello", "log", "progress", "output", "mask", "state", "error", "result", "request"}
)

// Actions orchd can send (PROTOCOL.md §7), in the order of a hello.
var allActions = []string{"describe", "validate", "plan", "apply", "destroy"}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// MessageError is a JSON object that is not a valid message; Error() is
// the exact text of PROTOCOL.md §6 and the vectors.
type MessageError struct{ Text string }

func (e *MessageError) Error() string { return e.Text }

type kind int

const (
	kString kind = iota
	kNonEmpty
	kInt
	kBool
	kObject
	kAny
	kStrings
	kVersion
)

var kindText = map[kind]string{
	kString: "a string", kNonEmpty: "a non-empty string", kInt: "an integer",
	kBool: "a boolean", kObject: "an object", kAny: "a JSON value",
	kStrings: "an array of strings", kVersion: "a dotted version string",
}

func kindOK(v any, k kind) bool {
	switch k {
	case kString:
		_, ok := v.(string)
		return ok
	case kNonEmpty:
		s, ok := v.(string)
		return ok && s != ""
	case kVersion:
		s, ok := v.(string)
		return ok && VersionValid(s)
	case kInt:
		return isInteger(v)
	case kBool:
		_, ok := v.(bool)
		return ok
	case kObject:
		_, ok := v.(map[string]any)
		return ok
	case kStrings:
		a, ok := v.([]any)
		if !ok {
			return false
		}
		for _, x := range a {
			if _, ok := x.(string); !ok {
				return false
			}
		}
		return true
	}
	return true
}

// checker validates the fields of one message; the first problem wins.
type checker struct {
	prefix string // "TYPE: "
	msg    map[string]any
	err    error
}

func (c *checker) fail(format string, args ...any) {
	if c.err == nil {
		c.err = &MessageError{c.prefix + fmt.Sprintf(format, args...)}
	}
}

func (c *checker) field(name string, k kind, required bool) {
	if c.err != nil {
		return
	}
	v, ok := c.msg[name]
	if !ok {
		if required {
			c.fail("missing required field '%s'", name)
		}
		return
	}
	if !kindOK(v, k) {
		c.fail("field '%s' must be %s", name, kindText[k])
	}
}

func (c *checker) req(name string, k kind) { c.field(name, k, true) }
func (c *checker) opt(name string, k kind) { c.field(name, k, false) }

// PlainPath: a relative path without '.', '..' or empty segments (§4.1).
func PlainPath(p string) bool {
	if p == "" || p[0] == '/' {
		return false
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// valueOrFile: a value inline (vname) or in a file (fname), exactly one.
func (c *checker) valueOrFile(vname string, vk kind, fname string, relative bool) {
	if c.err != nil {
		return
	}
	if _, ok := c.msg[fname]; !ok {
		c.req(vname, vk)
		return
	}
	if _, ok := c.msg[vname]; ok {
		c.fail("fields '%s' and '%s' are exclusive", vname, fname)
		return
	}
	c.req(fname, kNonEmpty)
	if c.err != nil {
		return
	}
	f := c.msg[fname].(string)
	if relative && !PlainPath(f) {
		c.fail("field '%s' must be a relative path without '.', '..' or empty segments", fname)
	}
	if !relative && f[0] != '/' {
		c.fail("field '%s' must be an absolute path", fname)
	}
}

func (c *checker) id() {
	c.req("id", kInt)
	if c.err == nil && intValue(c.msg["id"]) < 0 {
		c.fail("field 'id' must be a non-negative integer")
	}
}

// ValidateMessage checks a decoded JSON object as a message travelling in
// direction dir and returns its type, or a *MessageError with the exact
// text of the protocol.
func ValidateMessage(dir Direction, msg map[string]any) (string, error) {
	c := &checker{msg: msg}
	c.req("type", kString)
	if c.err != nil {
		return "", c.err
	}
	t := msg["type"].(string)
	if !contains(typesToExt, t) && !contains(typesFromExt, t) {
		return "", &MessageError{fmt.Sprintf("unknown message type '%s'", t)}
	}
	if dir == ToExt && !contains(typesToExt, t) {
		return "", &MessageError{fmt.Sprintf("message type '%s' is not allowed from orchd", t)}
	}
	if dir != ToExt && !contains(typesFromExt, t) {
		return "", &MessageError{fmt.Sprintf("message type '%s' is not allowed from an extension", t)}
	}
	c.prefix = t + ": "
	switch t {
	case "hello":
		if dir == ToExt {
			c.helloToExt()
		} else {
			c.helloFromExt()
		}
	case "action":
		c.action()
	case "cancel":
		c.req("reason", kString)
	case "response":
		c.id()
		c.req("ok", kBool)
		if c.err == nil && msg["ok"].(bool) {
			c.req("result", kObject)
		} else {
			c.req("error", kString)
		}
	case "log":
		c.req("level", kString)
		if c.err == nil && !contains([]string{"debug", "info", "warning", "error"}, msg["level"].(string)) {
			c.fail("field 'level' must be one of debug, info, warning, error")
		}
		c.req("message", kString)
	case "progress":
		c.req("message", kString)
		if p, ok := msg["percent"]; ok && c.err == nil {
			if f, isNum := numberValue(p); !isNum || !(f >= 0 && f <= 100) {
				c.fail("field 'percent' must be a number from 0 to 100")
			}
		}
	case "output":
		c.req("key", kNonEmpty)
		c.valueOrFile("value", kAny, "file", true)
		c.opt("secret", kBool)
	case "state":
		c.valueOrFile("state", kAny, "file", true)
		c.opt("secret", kBool)
	case "error":
		c.req("message", kString)
		c.opt("retryable", kBool)
	case "result":
		c.result()
	case "request":
		c.id()
		c.req("op", kNonEmpty)
		if c.err == nil && msg["op"] == "fetch" {
			c.req("source", kObject)
		}
	case "mask":
		c.req("value", kString)
	}
	if c.err != nil {
		return "", c.err
	}
	return t, nil
}

func (c *checker) helloToExt() {
	c.req("protocol", kObject)
	if c.err != nil {
		return
	}
	p := c.msg["protocol"].(map[string]any)
	for _, k := range []string{"min", "max"} {
		v, ok := p[k]
		if !ok {
			c.fail("missing required field 'protocol.%s'", k)
			return
		}
		if !isInteger(v) {
			c.fail("field 'protocol.%s' must be an integer", k)
			return
		}
	}
	if lo, hi := intValue(p["min"]), intValue(p["max"]); lo < 1 || hi < lo {
		c.fail("field 'protocol' must satisfy 1 <= min <= max")
	}
	c.req("orchd_version", kVersion)
}

func (c *checker) helloFromExt() {
	c.req("protocol", kInt)
	if c.err == nil && intValue(c.msg["protocol"]) < 1 {
		c.fail("field 'protocol' must be a positive integer")
	}
	c.req("name", kNonEmpty)
	c.req("version", kVersion)
	c.opt("min_orchd_version", kVersion)
	c.req("actions", kStrings)
	c.opt("features", kStrings)
}

func (c *checker) action() {
	c.req("action", kString)
	if c.err != nil {
		return
	}
	a := c.msg["action"].(string)
	if !contains(allActions, a) {
		c.fail("unknown action '%s'", a)
		return
	}
	if a == "describe" {
		return
	}
	c.req("instance", kNonEmpty)
	c.req("stack", kString)
	c.valueOrFile("config", kObject, "config_file", false)
	c.valueOrFile("state", kAny, "state_file", false)
	c.valueOrFile("outputs", kObject, "outputs_file", false)
	c.req("workdir", kString)
}

func (c *checker) result() {
	c.req("status", kString)
	if c.err == nil {
		if s := c.msg["status"].(string); s != "success" && s != "failure" {
			c.fail(`field 'status' must be "success" or "failure"`)
		}
	}
	c.opt("changed", kBool)
	c.opt("summary", kString)
	c.opt("describe", kObject)
	ev, ok := c.msg["errors"]
	if !ok || c.err != nil {
		return
	}
	errs, ok := ev.([]any)
	if !ok {
		c.fail("field 'errors' must be an array")
		return
	}
	for i, e := range errs {
		m, ok := e.(map[string]any)
		if !ok {
			c.fail("field 'errors[%d]' must be an object", i)
			return
		}
		for _, k := range []string{"path", "message"} {
			if _, ok := m[k].(string); !ok {
				c.fail("field 'errors[%d].%s' must be a string", i, k)
				return
			}
		}
	}
}
