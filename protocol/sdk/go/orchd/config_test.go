package orchd

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// parse decodes JSON text as the SDK does (json.Number numbers).
func parse(t *testing.T, text string) any {
	t.Helper()
	v, err := decodeJSON([]byte(text), MaxDepth, 0)
	if err != nil {
		t.Fatalf("%s: %v", text, err)
	}
	return v
}

type level string

func (l *level) UnmarshalText(b []byte) error {
	if s := string(b); s != "low" && s != "high" {
		return errors.New("must be low or high")
	}
	*l = level(b)
	return nil
}

type common struct {
	Labels map[string]string `json:"labels"`
}

type testConfig struct {
	common
	Command []string          `json:"command" orchd:"required,nonempty"`
	Env     map[string]string `json:"env"`
	Retries uint8             `json:"retries"`
	Ratio   float64           `json:"ratio"`
	Timeout time.Duration     `json:"timeout"`
	Mode    string            `json:"mode" orchd:"enum=fast|safe"`
	Level   level             `json:"level"`
	Limit   *int              `json:"limit"`
	Nested  struct {
		Name string `json:"name" orchd:"required"`
	} `json:"nested"`
	Raw     json.RawMessage `json:"raw"`
	Any     any             `json:"any"`
	Skipped string          `json:"-"`
	Plain   bool
}

func TestDecode(t *testing.T) {
	cases := []struct{ config, errors string }{
		{`{"command":["a"]}`, ``},
		{`[]`, `"": config must be a map`},
		{`{"comand":["a"],"Plainn":true,"zzzzzz":1}`,
			`Plainn: unknown key 'Plainn' (did you mean 'Plain'?); comand: unknown key 'comand' (did you mean 'command'?); zzzzzz: unknown key 'zzzzzz'; command: is required`},
		{`{"command":[]}`, `command: must not be empty`},
		{`{"command":["a",2,null]}`, `command[1]: must be a string; command[2]: must be a string`},
		{`{"command":"a"}`, `command: must be a list`},
		{`{"command":["a"],"env":{"A":"1","B":2}}`, `env.B: must be a string`},
		{`{"command":["a"],"env":[]}`, `env: must be a map`},
		{`{"command":["a"],"retries":300}`, `retries: is out of range`},
		{`{"command":["a"],"retries":-1}`, `retries: must be a non-negative integer`},
		{`{"command":["a"],"retries":1.5}`, `retries: must be an integer`},
		{`{"command":["a"],"retries":1e2}`, `retries: must be an integer`},
		{`{"command":["a"],"ratio":"x"}`, `ratio: must be a number`},
		{`{"command":["a"],"ratio":1e999}`, `ratio: is out of range`},
		{`{"command":["a"],"timeout":5}`, `timeout: must be a duration such as 30s or 1m30s`},
		{`{"command":["a"],"mode":"slow"}`, `mode: must be one of fast, safe`},
		{`{"command":["a"],"level":"mid"}`, `level: must be low or high`},
		{`{"command":["a"],"level":3}`, `level: must be a string`},
		{`{"command":["a"],"limit":"x"}`, `limit: must be an integer`},
		{`{"command":["a"],"nested":{"nme":"x"}}`, `nested.nme: unknown key 'nme' (did you mean 'name'?); nested.name: is required`},
		{`{"command":["a"],"labels":{"a":1}}`, `labels.a: must be a string`},
		{`{"command":["a"],"Plain":"yes"}`, `Plain: must be a boolean`},
		// §7.2: references stand for values not known yet, any type
		{`{"command":"${{ exec.a.outputs.argv }}","retries":"${{ x.y.outputs.n }}","mode":"${{ x.y.outputs.m }}","timeout":"${{ a.b.outputs.t }}"}`, ``},
	}
	for _, c := range cases {
		var cfg testConfig
		err := Decode(parse(t, c.config), &cfg)
		var got []string
		var ce ConfigErrors
		if errors.As(err, &ce) {
			for _, e := range ce {
				got = append(got, e.Path+": "+e.Message)
			}
		} else if err != nil {
			t.Fatalf("%s: %v", c.config, err)
		}
		if g := strings.Join(got, "; "); g != strings.ReplaceAll(c.errors, `"": `, ": ") {
			t.Errorf("%s:\n got %s\nwant %s", c.config, g, c.errors)
		}
	}

	cfg := testConfig{Mode: "safe", Retries: 3}
	err := Decode(parse(t, `{"command":["a","b"],"env":{"K":"v"},"ratio":0.5,"timeout":"1m30s","level":"high",
		"limit":7,"nested":{"name":"n"},"raw":{"x":[1,2]},"any":[1,"s"],"labels":{"l":"m"},"Plain":true}`), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mode != "safe" || cfg.Retries != 3 || cfg.Timeout != 90*time.Second || cfg.Level != "high" ||
		*cfg.Limit != 7 || cfg.Nested.Name != "n" || string(cfg.Raw) != `{"x":[1,2]}` ||
		!reflect.DeepEqual(cfg.Any, []any{json.Number("1"), "s"}) || cfg.Labels["l"] != "m" || !cfg.Plain ||
		!reflect.DeepEqual(cfg.Command, []string{"a", "b"}) || cfg.Env["K"] != "v" || cfg.Ratio != 0.5 {
		t.Fatalf("decoded %+v", cfg)
	}
	if err := Decode(parse(t, `{}`), cfg); err == nil || errors.As(err, new(ConfigErrors)) {
		t.Fatalf("not a pointer: %v", err)
	}
}

func TestConfigErrorsText(t *testing.T) {
	var errs ConfigErrors
	if errs.Err() != nil {
		t.Fatal("no errors must be a nil error")
	}
	errs = append(errs, UnknownKey("comand", "comand", []string{"command", "env"}))
	errs.Add("env.FOO", "must be a string")
	errs.Add("", "config must be a map")
	if got := errs.Error(); got != "invalid configuration: unknown key 'comand' (did you mean 'command'?) (and 2 more)" {
		t.Fatal(got)
	}
	want := []string{"unknown key 'comand' (did you mean 'command'?)", "env.FOO: must be a string", "config must be a map"}
	for i, e := range errs {
		if e.Error() != want[i] {
			t.Errorf("%d: %q", i, e.Error())
		}
	}
	for _, c := range [][3]string{{"comand", "command", ""}, {"whom", "who", ""}, {"x", "", ""}, {"secret_output", "secret_outputs", ""},
		{"kommand", "command", ""}, {"abc", "", "xyz"}} {
		cands := []string{"command", "who", "secret_outputs"}
		if c[2] != "" {
			cands = []string{c[2]}
		}
		if got := Closest(c[0], cands); got != c[1] {
			t.Errorf("Closest(%q) = %q, want %q", c[0], got, c[1])
		}
	}
}

func TestSchemaOf(t *testing.T) {
	type cfg struct {
		Who      string        `json:"who" orchd:"required" desc:"who to greet"`
		Greeting string        `json:"greeting"`
		Delay    time.Duration `json:"delay"`
		Tags     []string      `json:"tags"`
		Env      map[string]int
		Mode     string `json:"mode" orchd:"enum=a|b"`
	}
	got, _ := json.Marshal(SchemaOf(cfg{Greeting: "hello", Delay: time.Second}))
	want := `{"additionalProperties":false,"properties":{"Env":{"additionalProperties":{"type":"integer"},"type":"object"},` +
		`"delay":{"default":"1s","type":"string"},"greeting":{"default":"hello","type":"string"},` +
		`"mode":{"enum":["a","b"],"type":"string"},"tags":{"items":{"type":"string"},"type":"array"},` +
		`"who":{"description":"who to greet","type":"string"}},"required":["who"],"type":"object"}`
	if string(got) != want {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
}

func TestVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		cmp  int
	}{{"1.2", "1.2.0", 0}, {"0.9.0", "0.10.0", -1}, {"2.0.0-rc1", "2.0.0", 0}, {"0.1.0", "0.0.9", 1}, {"1", "1.0.0.1", -1}} {
		if got := CompareVersions(c.a, c.b); got != c.cmp {
			t.Errorf("CompareVersions(%s, %s) = %d", c.a, c.b, got)
		}
	}
	for v, ok := range map[string]bool{"0.1.0": true, "1": true, "2.0.0-rc1": true, "": false, "latest": false, "1..2": false, "1.": false, "v1": false} {
		if VersionValid(v) != ok {
			t.Errorf("VersionValid(%q) != %v", v, ok)
		}
	}
}

// Cases the vectors leave out (README: "Not covered"), as this parser
// decides them.
func TestParseBeyondTheVectors(t *testing.T) {
	for _, c := range []struct{ line, want string }{
		// duplicate keys: the last one wins, as in the C and Python codecs
		{`{"type":"bogus","type":"log","level":"info","message":"m"}`, "valid:log"},
		// a lone surrogate escape becomes U+FFFD
		{`{"type":"log","level":"info","message":"\ud800"}`, "valid:log"},
		// RFC 8259 strictly: json-c accepts these three, Python does not
		{`{"type":"progress","message":"x","percent":NaN}`, "non-protocol"},
		{`{"type":"request","id":1.,"op":"x"}`, "non-protocol"},
		{"{\"type\":\"log\",\"level\":\"info\",\"message\":\"a\tb\"}", "non-protocol"},
		// integers past int64 saturate (json-c does the same)
		{`{"type":"request","id":99999999999999999999,"op":"x"}`, "valid:request"},
		{`{"type":"request","id":-99999999999999999999,"op":"x"}`, "error:request: field 'id' must be a non-negative integer"},
		{`{"type":"request","id":-0,"op":"x"}`, "valid:request"},
		{`{"type":"progress","message":"x","percent":1e400}`, "error:progress: field 'percent' must be a number from 0 to 100"},
		// the first problem in reading order wins
		{`{"type":"log",` + strings.Repeat("[", 70) + `x`, "non-protocol"},
		{`{"type":"log","x":` + strings.Repeat("[", 70) + `x`, "error:message nested deeper than 64 levels"},
		{"\x00", "non-protocol"},
	} {
		if got := ParseLine(FromExt, []byte(c.line)).String(); got != c.want {
			t.Errorf("%.80s: got %s, want %s", c.line, got, c.want)
		}
	}
	v := ParseLine(FromExt, []byte(`{"type":"log","level":"info","message":"\ud83d\ude00 \ud800x é\/"}`))
	if v.Message["message"] != "😀 \uFFFDx é/" {
		t.Errorf("decoded %q", v.Message["message"])
	}
}

// PROTOCOL.md counts containers; orchd's parser (json-c) also counts a
// scalar inside the 64th level. ParseLine follows the text (and the
// vectors); what the SDK sends keeps to json-c's stricter count.
func TestDepthAsOrchdCountsIt(t *testing.T) {
	line := `{"type":"state","state":` + strings.Repeat("[", 63) + "1" + strings.Repeat("]", 63) + "}"
	if got := ParseLine(FromExt, []byte(line)).String(); got != "valid:state" {
		t.Fatalf("ParseLine: %s", got)
	}
	var state any = json.Number("1")
	for i := 0; i < 63; i++ {
		state = []any{state}
	}
	if _, err := encodeLine(stateMsg{Type: "state", State: mustMarshal(t, state)}); !errors.Is(err, errTooDeep) {
		t.Fatalf("encodeLine: %v", err)
	}
	if _, err := encodeLine(stateMsg{Type: "state", State: mustMarshal(t, state.([]any)[0])}); err != nil {
		t.Fatalf("encodeLine one level less: %v", err)
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	b, err := marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestValueFileLimits(t *testing.T) {
	if _, err := decodeJSON([]byte(strings.Repeat("[", 64)+strings.Repeat("]", 64)), MaxDepth, MaxFileValues); err != nil {
		t.Fatal(err)
	}
	// 1 + the ',', '[' and '{' outside strings
	many := "[" + strings.Repeat("1,", MaxFileValues-2) + "1]"
	if _, err := decodeJSON([]byte(many), MaxDepth, MaxFileValues); err != nil {
		t.Fatalf("%d values: %v", MaxFileValues, err)
	}
	many = "[" + strings.Repeat("1,", MaxFileValues-1) + "1]"
	if _, err := decodeJSON([]byte(many), MaxDepth, MaxFileValues); !errors.As(err, new(errTooManyValues)) {
		t.Fatalf("%d values: %v", MaxFileValues+1, err)
	}
	if _, err := decodeJSON([]byte(`"a,b,[c{"`), MaxDepth, 1); err != nil {
		t.Fatalf("commas in strings count: %v", err)
	}
}
