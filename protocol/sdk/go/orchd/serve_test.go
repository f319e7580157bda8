package orchd_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"orchd.dev/sdk/orchd"
)

// Serve runs an extension in-process, e.g. in an author's unit test.
func TestServe(t *testing.T) {
	ext := &orchd.Extension{
		Name:    "inproc",
		Version: "1.0",
		Apply: func(ctx context.Context, a *orchd.Action) (orchd.Result, error) {
			var cfg struct {
				N int `json:"n" orchd:"required"`
			}
			if err := a.DecodeConfig(&cfg); err != nil {
				return orchd.Result{}, err
			}
			a.Output("double", 2*cfg.N)
			return orchd.Changed("doubled %d", cfg.N), nil
		},
		Features: []string{},
	}
	in := strings.NewReader(`{"type":"hello","protocol":{"min":1,"max":1},"orchd_version":"0.1.0"}` + "\n" +
		`{"type":"action","action":"apply","instance":"i","stack":"s","config":{"n":21},"state":null,"outputs":{},"workdir":"/tmp"}` + "\n")
	var out bytes.Buffer
	if code := ext.Serve(in, &out); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	want := `{"type":"hello","protocol":1,"name":"inproc","version":"1.0","actions":["describe","apply"],"features":[]}
{"type":"output","key":"double","value":42,"secret":false}
{"type":"result","status":"success","changed":true,"summary":"doubled 21"}
`
	if out.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", out.String(), want)
	}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if v := orchd.ParseLine(orchd.FromExt, []byte(line)); v.Kind != orchd.Valid {
			t.Errorf("%s: %s", line, v)
		}
	}
}

func TestCheck(t *testing.T) {
	apply := func(context.Context, *orchd.Action) (orchd.Result, error) { return orchd.Result{}, nil }
	for _, c := range []struct {
		ext  orchd.Extension
		want string
	}{
		{orchd.Extension{Name: "Bad", Version: "1", Apply: apply}, `name "Bad" must match [a-z][a-z0-9_-]*`},
		{orchd.Extension{Name: "x", Version: "v1", Apply: apply}, `version "v1" is not a dotted version`},
		{orchd.Extension{Name: "x", Version: "1"}, "apply is required (PROTOCOL.md §7)"},
		{orchd.Extension{Name: "x", Version: "1", Apply: apply, Protocol: orchd.Range{Min: 1, Max: 2}}, "protocol 1..2: this SDK speaks 1..1"},
		{orchd.Extension{Name: "x", Version: "1", Apply: apply, Features: []string{"telepathy"}}, `unknown feature "telepathy"`},
		{orchd.Extension{Name: "x", Version: "1", Apply: apply}, ""},
	} {
		err := c.ext.Check()
		if (err == nil && c.want != "") || (err != nil && err.Error() != c.want) {
			t.Errorf("%+v: %v, want %q", c.ext.Name, err, c.want)
		}
	}
}
