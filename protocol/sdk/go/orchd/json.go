package orchd

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// A strict RFC 8259 decoder. encoding/json is not used to read what orchd
// sends because it accepts what the protocol rejects (it replaces invalid
// UTF-8, and a Decoder stops before trailing data) and has no nesting limit
// of our own. This one reads exactly one value, checks UTF-8, and reports
// the first problem in reading order, as the C library (json-c) does: a
// value nested deeper than the limit is a depth error even if the line is
// also broken further on.
//
// Values: map[string]any, []any, string, json.Number, bool, nil. A key
// given twice keeps its last value (as the C and Python codecs do).

// errDepth is returned when a value is nested deeper than the limit.
type errDepth struct{}

func (errDepth) Error() string { return "nested too deep" }

// errTooManyValues is returned when a value file holds too many values.
type errTooManyValues struct{}

func (errTooManyValues) Error() string { return "too many JSON values" }

// syntaxError: the input is not exactly one JSON value.
type syntaxError struct {
	msg string
	off int
}

func (e *syntaxError) Error() string { return fmt.Sprintf("%s at offset %d", e.msg, e.off) }

type decoder struct {
	data      []byte
	pos       int
	depth     int
	maxDepth  int
	values    int // 1 + the ',', '[' and '{' outside strings (§4.1)
	maxValues int // 0: no limit
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// decodeJSON reads exactly one JSON value from data (whitespace around it
// allowed).
func decodeJSON(data []byte, maxDepth, maxValues int) (any, error) {
	d := &decoder{data: data, maxDepth: maxDepth, values: 1, maxValues: maxValues}
	v, err := d.value()
	if err != nil {
		return nil, err
	}
	d.skipSpace()
	if d.pos < len(d.data) {
		return nil, &syntaxError{"trailing data after the value", d.pos}
	}
	return v, nil
}

func (d *decoder) skipSpace() {
	for d.pos < len(d.data) && isJSONSpace(d.data[d.pos]) {
		d.pos++
	}
}

func (d *decoder) errorf(format string, args ...any) error {
	return &syntaxError{fmt.Sprintf(format, args...), d.pos}
}

func (d *decoder) unexpected() error {
	if d.pos >= len(d.data) {
		return d.errorf("unexpected end of input")
	}
	c := d.data[d.pos]
	if c >= 0x20 && c < 0x7f {
		return d.errorf("unexpected character '%c'", c)
	}
	return d.errorf("unexpected byte 0x%02x", c)
}

func (d *decoder) count() error {
	d.values++
	if d.maxValues > 0 && d.values > d.maxValues {
		return errTooManyValues{}
	}
	return nil
}

func (d *decoder) open() error {
	d.depth++
	if d.depth > d.maxDepth {
		return errDepth{}
	}
	return d.count()
}

func (d *decoder) value() (any, error) {
	d.skipSpace()
	if d.pos >= len(d.data) {
		return nil, d.unexpected()
	}
	switch c := d.data[d.pos]; {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		return d.str()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	}
	return nil, d.unexpected()
}

func (d *decoder) literal(word string) error {
	for i := 0; i < len(word); i++ {
		if d.pos >= len(d.data) || d.data[d.pos] != word[i] {
			return d.unexpected()
		}
		d.pos++
	}
	return nil
}

func (d *decoder) object() (any, error) {
	if err := d.open(); err != nil {
		return nil, err
	}
	d.pos++ // '{'
	m := map[string]any{}
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		d.depth--
		return m, nil
	}
	for {
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != '"' {
			return nil, d.unexpected()
		}
		k, err := d.str()
		if err != nil {
			return nil, err
		}
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != ':' {
			return nil, d.unexpected()
		}
		d.pos++
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		m[k.(string)] = v
		d.skipSpace()
		if d.pos >= len(d.data) {
			return nil, d.unexpected()
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
			if err := d.count(); err != nil {
				return nil, err
			}
		case '}':
			d.pos++
			d.depth--
			return m, nil
		default:
			return nil, d.unexpected()
		}
	}
}

func (d *decoder) array() (any, error) {
	if err := d.open(); err != nil {
		return nil, err
	}
	d.pos++ // '['
	a := []any{}
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		d.depth--
		return a, nil
	}
	for {
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		d.skipSpace()
		if d.pos >= len(d.data) {
			return nil, d.unexpected()
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
			if err := d.count(); err != nil {
				return nil, err
			}
		case ']':
			d.pos++
			d.depth--
			return a, nil
		default:
			return nil, d.unexpected()
		}
	}
}

func hexVal(c byte) rune {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0')
	case c >= 'a' && c <= 'f':
		return rune(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// hex4 reads the 4 hex digits of a \u escape at d.pos.
func (d *decoder) hex4() (rune, error) {
	if d.pos+4 > len(d.data) {
		d.pos = len(d.data)
		return 0, d.unexpected()
	}
	var r rune
	for i := 0; i < 4; i++ {
		h := hexVal(d.data[d.pos])
		if h < 0 {
			return 0, d.errorf("invalid \\u escape")
		}
		r = r<<4 | h
		d.pos++
	}
	return r, nil
}

// str reads a string; d.pos is at its opening quote. The result is a
// string (as any, to save an allocation at the call sites).
func (d *decoder) str() (any, error) {
	d.pos++ // '"'
	start := d.pos
	var buf []byte // nil until the first escape
	for {
		if d.pos >= len(d.data) {
			return nil, d.errorf("unterminated string")
		}
		c := d.data[d.pos]
		switch {
		case c == '"':
			var s string
			if buf == nil {
				s = string(d.data[start:d.pos])
			} else {
				s = string(append(buf, d.data[start:d.pos]...))
			}
			d.pos++
			return s, nil
		case c < 0x20:
			return nil, d.errorf("control character in string")
		case c < 0x80 && c != '\\':
			d.pos++
		case c >= 0x80:
			r, size := utf8.DecodeRune(d.data[d.pos:])
			if r == utf8.RuneError && size <= 1 {
				return nil, d.errorf("invalid UTF-8")
			}
			d.pos += size
		default: // backslash
			buf = append(buf, d.data[start:d.pos]...)
			d.pos++
			if d.pos >= len(d.data) {
				return nil, d.errorf("unterminated string")
			}
			e := d.data[d.pos]
			d.pos++
			switch e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, err := d.hex4()
				if err != nil {
					return nil, err
				}
				if utf16.IsSurrogate(r) {
					// a pair makes one character; a lone half is
					// replaced by U+FFFD (not covered by the vectors)
					r2 := rune(-1)
					if d.pos+6 <= len(d.data) && d.data[d.pos] == '\\' && d.data[d.pos+1] == 'u' {
						save := d.pos
						d.pos += 2
						if x, err := d.hex4(); err == nil {
							r2 = x
						}
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							r = dec
						} else {
							d.pos = save
							r = utf8.RuneError
						}
					} else {
						r = utf8.RuneError
					}
				}
				buf = utf8.AppendRune(buf, r)
			default:
				d.pos--
				return nil, d.errorf("invalid escape '\\%c'", e)
			}
			start = d.pos
		}
	}
}

func (d *decoder) digits() int {
	n := 0
	for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
		d.pos++
		n++
	}
	return n
}

func (d *decoder) number() (any, error) {
	start := d.pos
	if d.data[d.pos] == '-' {
		d.pos++
	}
	if d.pos >= len(d.data) {
		return nil, d.unexpected()
	}
	if d.data[d.pos] == '0' {
		d.pos++
	} else if d.digits() == 0 {
		return nil, d.unexpected()
	}
	if d.pos < len(d.data) && d.data[d.pos] == '.' {
		d.pos++
		if d.digits() == 0 {
			return nil, d.unexpected()
		}
	}
	if d.pos < len(d.data) && (d.data[d.pos] == 'e' || d.data[d.pos] == 'E') {
		d.pos++
		if d.pos < len(d.data) && (d.data[d.pos] == '+' || d.data[d.pos] == '-') {
			d.pos++
		}
		if d.digits() == 0 {
			return nil, d.unexpected()
		}
	}
	return json.Number(d.data[start:d.pos]), nil
}

// isInteger: a JSON number without fraction or exponent (PROTOCOL §6).
func isInteger(v any) bool {
	n, ok := v.(json.Number)
	if !ok {
		return false
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c == '.' || c == 'e' || c == 'E' {
			return false
		}
	}
	return true
}

// intValue is the value of an integer, saturated at the bounds of int64
// (as json-c does).
func intValue(v any) int64 {
	n, _ := strconv.ParseInt(string(v.(json.Number)), 10, 64)
	return n
}

// numberValue is the value of any JSON number (±Inf past float64).
func numberValue(v any) (float64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, _ := strconv.ParseFloat(string(n), 64)
	return f, true
}
