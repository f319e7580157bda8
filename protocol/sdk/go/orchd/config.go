package orchd

import (
	"encoding"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ConfigError is one problem of a configuration, at the path of the key it
// is about (PROTOCOL.md §7.2): "command", "env.FOO", "command[2]", or ""
// for the config as a whole.
type ConfigError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// Error is "PATH: MESSAGE", or MESSAGE alone when the path is empty or
// the message names it already ("unknown key 'x'" at x).
func (e ConfigError) Error() string {
	if e.Path == "" || strings.Contains(e.Message, "'"+e.Path+"'") {
		return e.Message
	}
	return e.Path + ": " + e.Message
}

// ConfigErrors is every problem of a configuration. A handler that returns
// it (or an error wrapping it) fails its action with the errors listed in
// the result by path, each also logged at level error.
type ConfigErrors []ConfigError

// Error is "invalid configuration: FIRST (and N more)".
func (e ConfigErrors) Error() string {
	switch len(e) {
	case 0:
		return "invalid configuration"
	case 1:
		return "invalid configuration: " + e[0].Error()
	}
	return fmt.Sprintf("invalid configuration: %s (and %d more)", e[0].Error(), len(e)-1)
}

// Add records a problem at path.
func (e *ConfigErrors) Add(path, format string, args ...any) {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	*e = append(*e, ConfigError{Path: path, Message: msg})
}

// Err is nil when there is no error, else e (so that a function can end
// with "return errs.Err()" without returning a typed nil).
func (e ConfigErrors) Err() error {
	if len(e) == 0 {
		return nil
	}
	return e
}

// UnknownKey is the error for key, unknown at path (its own path: orchd
// shows the pipeline line it is written on), with a suggestion among known:
// "unknown key 'comand' (did you mean 'command'?)".
func UnknownKey(path, key string, known []string) ConfigError {
	if best := Closest(key, known); best != "" {
		return ConfigError{path, fmt.Sprintf("unknown key '%s' (did you mean '%s'?)", key, best)}
	}
	return ConfigError{path, fmt.Sprintf("unknown key '%s'", key)}
}

// Closest is the candidate nearest to name, at an edit distance below 3
// (the first one on a tie), or "" (the rule of orchd's C library).
func Closest(name string, candidates []string) string {
	best, bestd := "", 3
	for _, c := range candidates {
		if d := editDistance(name, c); d < bestd {
			best, bestd = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) >= 63 || len(rb) >= 63 {
		return 99
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			sub := prev[j-1]
			if ra[i-1] != rb[j-1] {
				sub++
			}
			cur[j] = min(sub, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// IsReference reports whether s holds a reference to another instance's
// output ("${{ exec.web.outputs.url }}"). Before that instance was ever
// applied, validate and plan receive the reference text itself in place of
// the value (PROTOCOL.md §7.2); Decode accepts it wherever a value of
// another type is expected, leaving the field as it was.
func IsReference(s string) bool {
	i := strings.Index(s, "${{")
	return i >= 0 && strings.Contains(s[i:], "}}")
}

// Decode fills the struct (or map) dst points to from config (normally
// Action.Config) and returns ConfigErrors naming every problem by path:
// unknown keys (with a suggestion), missing required keys, values of the
// wrong type. Keys are matched exactly against the fields' json tag names
// (or their Go names). Tags:
//
//	json:"name"                   the key ("-": not a config key)
//	orchd:"required"              the key must be present
//	orchd:"nonempty"              a string, list or map must not be empty
//	orchd:"enum=a|b|c"            a string must be one of these
//	desc:"..."                    the description shown by describe (SchemaOf)
//
// Field types: string, bool, integers (a JSON number without fraction or
// exponent, in range), floats, time.Duration (a string such as "1m30s"),
// encoding.TextUnmarshaler (a string), slices, maps with string keys,
// structs (nested keys, whose unknown keys are errors too; embedded
// structs are flattened), pointers (nil when absent or null), any (the
// value as decoded: map[string]any, []any, string, json.Number, bool, nil)
// and json.RawMessage. A field whose key is absent keeps its value: set
// defaults before calling Decode.
//
// A string holding a reference (see IsReference) is accepted for a field
// of any type; a non-string field then keeps its value.
//
// An error that is not a ConfigErrors means dst is not a usable pointer.
func Decode(config any, dst any) error {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("orchd.Decode: dst must be a non-nil pointer, not %T", dst)
	}
	var errs ConfigErrors
	if _, ok := config.(map[string]any); !ok {
		if k := rv.Elem().Kind(); k == reflect.Struct || k == reflect.Map {
			errs.Add("", "config must be a map")
			return errs
		}
	}
	(&cfgDecoder{errs: &errs}).decode("", config, rv.Elem())
	return errs.Err()
}

type cfgDecoder struct{ errs *ConfigErrors }

var (
	durationType        = reflect.TypeOf(time.Duration(0))
	rawMessageType      = reflect.TypeOf(json.RawMessage(nil))
	textUnmarshalerType = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
)

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// wantsText: a type read from a JSON string.
func wantsText(t reflect.Type) bool {
	return t.Kind() == reflect.String || t == durationType || reflect.PointerTo(t).Implements(textUnmarshalerType)
}

func (d *cfgDecoder) decode(path string, v any, rv reflect.Value) {
	t := rv.Type()
	if s, ok := v.(string); ok && IsReference(s) {
		if t.Kind() == reflect.String {
			rv.SetString(s)
		} else if t.Kind() == reflect.Interface {
			rv.Set(reflect.ValueOf(s))
		}
		return // not known yet (§7.2): whatever the type
	}
	switch {
	case t == rawMessageType:
		b, _ := json.Marshal(v)
		rv.SetBytes(b)
		return
	case t == durationType:
		s, ok := v.(string)
		dur, err := time.ParseDuration(s)
		if !ok || err != nil {
			d.errs.Add(path, "must be a duration such as 30s or 1m30s")
			return
		}
		rv.SetInt(int64(dur))
		return
	case t.Kind() != reflect.Pointer && t.Kind() != reflect.Interface && reflect.PointerTo(t).Implements(textUnmarshalerType):
		s, ok := v.(string)
		if !ok {
			d.errs.Add(path, "must be a string")
			return
		}
		if err := rv.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			d.errs.Add(path, "%s", err.Error())
		}
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v == nil {
			rv.Set(reflect.Zero(t))
			return
		}
		p := reflect.New(t.Elem())
		if !rv.IsNil() {
			p.Elem().Set(rv.Elem())
		}
		n := len(*d.errs)
		d.decode(path, v, p.Elem())
		if len(*d.errs) == n {
			rv.Set(p)
		}
	case reflect.Interface:
		if v == nil {
			rv.Set(reflect.Zero(t))
		} else if reflect.TypeOf(v).AssignableTo(t) {
			rv.Set(reflect.ValueOf(v))
		} else {
			d.errs.Add(path, "has an unexpected type")
		}
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			d.errs.Add(path, "must be a string")
			return
		}
		rv.SetString(s)
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			d.errs.Add(path, "must be a boolean")
			return
		}
		rv.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if !isInteger(v) {
			d.errs.Add(path, "must be an integer")
			return
		}
		n, err := strconv.ParseInt(string(v.(json.Number)), 10, t.Bits())
		if err != nil {
			d.errs.Add(path, "is out of range")
			return
		}
		rv.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if !isInteger(v) {
			d.errs.Add(path, "must be an integer")
			return
		}
		if strings.HasPrefix(string(v.(json.Number)), "-") {
			d.errs.Add(path, "must be a non-negative integer")
			return
		}
		n, err := strconv.ParseUint(string(v.(json.Number)), 10, t.Bits())
		if err != nil {
			d.errs.Add(path, "is out of range")
			return
		}
		rv.SetUint(n)
	case reflect.Float32, reflect.Float64:
		f, ok := numberValue(v)
		if !ok {
			d.errs.Add(path, "must be a number")
			return
		}
		if math.IsInf(f, 0) || (t.Kind() == reflect.Float32 && math.Abs(f) > math.MaxFloat32) {
			d.errs.Add(path, "is out of range")
			return
		}
		rv.SetFloat(f)
	case reflect.Slice:
		a, ok := v.([]any)
		if !ok {
			d.errs.Add(path, "must be a list")
			return
		}
		s := reflect.MakeSlice(t, len(a), len(a))
		for i, x := range a {
			d.decode(fmt.Sprintf("%s[%d]", path, i), x, s.Index(i))
		}
		rv.Set(s)
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok || t.Key().Kind() != reflect.String {
			d.errs.Add(path, "must be a map")
			return
		}
		out := reflect.MakeMapWithSize(t, len(m))
		for _, k := range sortedKeys(m) {
			e := reflect.New(t.Elem()).Elem()
			d.decode(joinKey(path, k), m[k], e)
			out.SetMapIndex(reflect.ValueOf(k).Convert(t.Key()), e)
		}
		rv.Set(out)
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			d.errs.Add(path, "must be a map")
			return
		}
		d.structFields(path, m, rv)
	default:
		d.errs.Add(path, "cannot be decoded into a Go %s", t)
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (d *cfgDecoder) structFields(path string, m map[string]any, rv reflect.Value) {
	fields := structInfo(rv.Type())
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	// unknown keys first, each at its own path
	for _, k := range sortedKeys(m) {
		if !contains(names, k) {
			*d.errs = append(*d.errs, UnknownKey(joinKey(path, k), k, names))
		}
	}
	for _, f := range fields {
		p := joinKey(path, f.name)
		v, ok := m[f.name]
		if !ok {
			if f.required {
				d.errs.Add(p, "is required")
			}
			continue
		}
		fv := rv.FieldByIndex(f.index)
		n := len(*d.errs)
		d.decode(p, v, fv)
		if len(*d.errs) != n {
			continue
		}
		if s, isStr := v.(string); isStr && IsReference(s) {
			continue
		}
		if f.nonempty {
			switch fv.Kind() {
			case reflect.String:
				if fv.Len() == 0 {
					d.errs.Add(p, "must be a non-empty string")
				}
			case reflect.Slice, reflect.Map:
				if fv.Len() == 0 {
					d.errs.Add(p, "must not be empty")
				}
			}
		}
		if len(f.enum) > 0 && fv.Kind() == reflect.String && !contains(f.enum, fv.String()) {
			d.errs.Add(p, "must be one of %s", strings.Join(f.enum, ", "))
		}
	}
}

type fieldInfo struct {
	name     string
	index    []int
	required bool
	nonempty bool
	enum     []string
	desc     string
}

// structInfo: the config keys of a struct type, in declaration order.
func structInfo(t reflect.Type) []fieldInfo {
	var out []fieldInfo
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag, hasTag := sf.Tag.Lookup("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" && tag == "-" {
			continue
		}
		if sf.Anonymous && sf.Type.Kind() == reflect.Struct && name == "" {
			for _, f := range structInfo(sf.Type) {
				f.index = append([]int{i}, f.index...)
				out = append(out, f)
			}
			continue
		}
		if !sf.IsExported() {
			continue
		}
		if !hasTag || name == "" {
			name = sf.Name
		}
		f := fieldInfo{name: name, index: []int{i}, desc: sf.Tag.Get("desc")}
		for _, opt := range strings.Split(sf.Tag.Get("orchd"), ",") {
			switch {
			case opt == "required":
				f.required = true
			case opt == "nonempty":
				f.nonempty = true
			case strings.HasPrefix(opt, "enum="):
				f.enum = strings.Split(strings.TrimPrefix(opt, "enum="), "|")
			}
		}
		out = append(out, f)
	}
	return out
}

// SchemaOf describes the config struct v (or a pointer to one) as the JSON
// Schema subset describe shows (PROTOCOL.md §7.1): type, properties,
// required, items, additionalProperties, description, default, enum. The
// non-zero fields of v are the defaults; the tags are those of Decode.
func SchemaOf(v any) map[string]any {
	rv := reflect.ValueOf(v)
	return schemaFor(rv.Type(), rv)
}

func schemaFor(t reflect.Type, v reflect.Value) map[string]any {
	switch {
	case t == durationType:
		return map[string]any{"type": "string"}
	case t == rawMessageType:
		return map[string]any{}
	case t.Kind() != reflect.Pointer && t.Kind() != reflect.Interface && reflect.PointerTo(t).Implements(textUnmarshalerType):
		return map[string]any{"type": "string"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		var ev reflect.Value
		if v.IsValid() && !v.IsNil() {
			ev = v.Elem()
		}
		return schemaFor(t.Elem(), ev)
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": schemaFor(t.Elem(), reflect.Value{})}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaFor(t.Elem(), reflect.Value{})}
	case reflect.Struct:
		props := map[string]any{}
		var required []string
		for _, f := range structInfo(t) {
			var fv reflect.Value
			if v.IsValid() {
				fv = v.FieldByIndex(f.index)
			}
			s := schemaFor(t.FieldByIndex(f.index).Type, fv)
			if f.desc != "" {
				s["description"] = f.desc
			}
			if len(f.enum) > 0 {
				s["enum"] = f.enum
			}
			if fv.IsValid() && !fv.IsZero() && fv.Kind() != reflect.Struct {
				if fv.Type() == durationType {
					s["default"] = time.Duration(fv.Int()).String()
				} else {
					s["default"] = fv.Interface()
				}
			}
			if f.required {
				required = append(required, f.name)
			}
			props[f.name] = s
		}
		s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		if len(required) > 0 {
			s["required"] = required
		}
		return s
	}
	return map[string]any{}
}
