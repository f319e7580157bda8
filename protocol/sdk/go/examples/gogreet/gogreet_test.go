package main

// The example driven as orchd drives it: the executable is built with
// `go build` and run as a subprocess over real pipes (internal/exttest
// checks every line it writes with the SDK's parser). TestOrchd runs the
// sample pipeline with the real orchd.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"orchd.dev/sdk/internal/exttest"
)

var bin string // the built orchd-ext-gogreet

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gogreet-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "orchd-ext-gogreet")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type msg = exttest.Msg

func start(t *testing.T) *exttest.Proc { return exttest.Start(t, bin) }

func wantResult(t *testing.T, msgs []msg, status, summary string) msg {
	t.Helper()
	r := msgs[len(msgs)-1]
	if r["type"] != "result" || r["status"] != status || (summary != "" && r["summary"] != summary) {
		t.Fatalf("expected a %s result %q, got %s", status, summary, exttest.JSON(r))
	}
	return r
}

func wantChanged(t *testing.T, r msg, changed bool) {
	t.Helper()
	if r["changed"] != changed {
		t.Fatalf("expected changed %v: %s", changed, exttest.JSON(r))
	}
}

func TestHandshake(t *testing.T) {
	p := start(t)
	h := p.Hello(1, 1)
	want := `{"actions":["describe","validate","plan","apply","destroy"],"features":["files","session"],"min_orchd_version":"0.1.0","name":"gogreet","protocol":1,"type":"hello","version":"0.1.0"}`
	if got := exttest.JSON(h); got != want {
		t.Fatalf("hello:\n got %s\nwant %s", got, want)
	}
	// orchd closes stdin after the hello when it has no action for the
	// extension (one its hello does not list, §7): a quiet exit
	p.CloseStdin()
	if code := p.Wait(); code != 0 || p.Stderr() != "" {
		t.Fatalf("exit %d, stderr %q", code, p.Stderr())
	}

	t.Run("wider range", func(t *testing.T) {
		p := start(t)
		if h := p.Hello(1, 5); h["protocol"] != json.Number("1") {
			t.Fatalf("chose %v", h["protocol"])
		}
	})
	t.Run("disjoint range", func(t *testing.T) {
		p := start(t)
		e := p.Hello(2, 3)
		text := "extension gogreet speaks protocol 1..1, orchd offers 2..3"
		if e["type"] != "error" || e["message"] != text || e["retryable"] != false {
			t.Fatalf("got %s", exttest.JSON(e))
		}
		if code := p.Wait(); code != 1 {
			t.Fatalf("exit %d", code)
		}
		if !strings.Contains(p.Stderr(), text) || len(p.Stdout()) != 1 {
			t.Fatalf("stderr %q, stdout %q", p.Stderr(), p.Stdout())
		}
	})
	t.Run("a hello of exactly 1 MiB, CRLF", func(t *testing.T) {
		p := start(t)
		hello := `{"type":"hello","protocol":{"min":1,"max":1},"orchd_version":"0.1.0"}`
		p.SendRaw([]byte(hello + strings.Repeat(" ", 1048576-len(hello)-1) + "\r\n"))
		if h := p.Next(); h == nil || h["type"] != "hello" {
			t.Fatalf("got %v; stderr %s", h, p.Stderr())
		}
	})
	t.Run("invalid hello", func(t *testing.T) {
		p := start(t)
		p.Send(`{"type":"hello","protocol":{"min":0,"max":1},"orchd_version":"0.1.0"}`)
		if code := p.Wait(); code != 1 || len(p.Stdout()) != 0 ||
			!strings.Contains(p.Stderr(), "protocol error: hello: field 'protocol' must satisfy 1 <= min <= max") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, p.Stdout(), p.Stderr())
		}
	})
}

func TestDescribe(t *testing.T) {
	p := start(t)
	msgs := p.Run("describe", nil)
	r := wantResult(t, msgs, "success", "gogreet 0.1.0")
	d, _ := r["describe"].(msg)
	if d["type"] != "gogreet" || d["version"] != "0.1.0" || exttest.JSON(d["actions"]) != `["describe","validate","plan","apply","destroy"]` {
		t.Fatalf("describe: %s", exttest.JSON(d))
	}
	cfg := exttest.JSON(d["config"])
	for _, s := range []string{`"required":["who"]`, `"greeting":{"default":"hello"`, `"additionalProperties":false`} {
		if !strings.Contains(cfg, s) {
			t.Errorf("config schema lacks %s: %s", s, cfg)
		}
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		config  string
		status  string
		summary string
		errors  string
	}{
		{`{"whom":"x","greeting":5}`, "failure",
			"invalid configuration: unknown key 'whom' (did you mean 'who'?) (and 2 more)",
			`[{"message":"unknown key 'whom' (did you mean 'who'?)","path":"whom"},{"message":"is required","path":"who"},{"message":"must be a string","path":"greeting"}]`},
		{`{"who":""}`, "failure", "invalid configuration: who: must be a non-empty string",
			`[{"message":"must be a non-empty string","path":"who"}]`},
		{`{"who":"Ada","delay":"soon"}`, "failure", "invalid configuration: delay: must be a duration such as 30s or 1m30s", ""},
		{`{"who":"Ada","zzz":1}`, "failure", "invalid configuration: unknown key 'zzz'", ""},
		{`{"who":"Ada","greeting":"hi"}`, "success", "configuration is valid", ""},
		// §7.2: the reference text of an output not known yet
		{`{"who":"${{ exec.x.outputs.name }}","delay":"${{ exec.x.outputs.delay }}"}`, "success", "configuration is valid", ""},
	}
	for _, c := range cases {
		t.Run(c.config, func(t *testing.T) {
			var cfg msg
			if err := json.Unmarshal([]byte(c.config), &cfg); err != nil {
				t.Fatal(err)
			}
			msgs := start(t).Run("validate", msg{"config": cfg})
			r := wantResult(t, msgs, c.status, c.summary)
			wantChanged(t, r, false)
			if c.errors != "" && exttest.JSON(r["errors"]) != c.errors {
				t.Fatalf("errors:\n got %s\nwant %s", exttest.JSON(r["errors"]), c.errors)
			}
			if c.status == "failure" && exttest.Find(msgs, "log", "level", "error") == nil {
				t.Fatalf("no error logged: %v", msgs)
			}
		})
	}
	// every error is logged, "path: message" unless the message names it
	msgs := start(t).Run("validate", msg{"config": msg{"whom": "x", "greeting": 5}})
	for _, text := range []string{"unknown key 'whom' (did you mean 'who'?)", "who: is required", "greeting: must be a string"} {
		if exttest.Find(msgs, "log", "message", text) == nil {
			t.Errorf("no log line %q", text)
		}
	}
}

// plan, apply, apply again (idempotent: nothing changed, the state read
// back), plan, destroy, destroy again.
func TestLifecycle(t *testing.T) {
	cfg := msg{"who": `A "q" é`}
	run := func(action string, state any) (*exttest.Proc, []msg) {
		p := start(t)
		return p, p.Run(action, msg{"config": cfg, "state": state})
	}

	_, msgs := run("plan", nil)
	wantChanged(t, wantResult(t, msgs, "success", `would greet A "q" é`), true)

	p, msgs := run("apply", nil)
	wantChanged(t, wantResult(t, msgs, "success", `greeted A "q" é`), true)
	if o := exttest.Find(msgs, "output", "key", "message"); o == nil || o["value"] != `hello, A "q" é` || o["secret"] != false {
		t.Fatalf("output message: %v", o)
	}
	if o := exttest.Find(msgs, "output", "key", "runs"); o == nil || o["value"] != json.Number("1") {
		t.Fatalf("output runs: %v", o)
	}
	if pr := exttest.Find(msgs, "progress", "", nil); pr == nil || pr["percent"] != json.Number("50") {
		t.Fatalf("progress: %v", pr)
	}
	if b, err := os.ReadFile(filepath.Join(p.Workdir(), "greeting.txt")); err != nil || string(b) != "hello, A \"q\" é\n" {
		t.Fatalf("greeting.txt: %q %v", b, err)
	}
	st := exttest.Last(msgs, "state")["state"]
	if got := exttest.JSON(st); got != `{"greeting":"hello","runs":1,"who":"A \"q\" é"}` {
		t.Fatalf("state %s", got)
	}

	_, msgs = run("apply", st)
	wantChanged(t, wantResult(t, msgs, "success", ""), false)
	if o := exttest.Find(msgs, "output", "key", "runs"); o == nil || o["value"] != json.Number("2") {
		t.Fatalf("second apply, runs: %v", o)
	}
	if exttest.Find(msgs, "log", "level", "debug") == nil {
		t.Fatal("the previous state was not logged")
	}
	st = exttest.Last(msgs, "state")["state"]

	_, msgs = run("plan", st)
	wantChanged(t, wantResult(t, msgs, "success", "no change"), false)

	cfg["greeting"] = "hi"
	_, msgs = run("plan", st)
	wantChanged(t, wantResult(t, msgs, "success", `would greet A "q" é`), true)

	_, msgs = run("destroy", st)
	wantChanged(t, wantResult(t, msgs, "success", "nothing to destroy"), true)
	if s := exttest.Last(msgs, "state"); s == nil || s["state"] != nil {
		t.Fatalf("destroy must send state null: %v", s)
	}
	_, msgs = run("destroy", nil)
	wantChanged(t, wantResult(t, msgs, "success", "nothing to destroy"), false)
}

// §7.6: validate, then apply in the same process; the end of input ends it.
func TestSession(t *testing.T) {
	for _, first := range []string{"validate", "describe"} {
		t.Run(first, func(t *testing.T) {
			p := start(t)
			p.Hello(1, 1)
			fields := msg{"config": msg{"who": "sessions"}}
			p.Send(p.Action(first, fields))
			wantResult(t, p.Until("result"), "success", "")
			time.Sleep(50 * time.Millisecond)
			if p.Exited() {
				t.Fatal("the extension exited after its first result")
			}
			p.Send(p.Action("apply", fields))
			msgs := p.Until("result")
			wantResult(t, msgs, "success", "greeted sessions")
			if exttest.Find(msgs, "output", "key", "message") == nil {
				t.Fatal("no output")
			}
			p.CloseStdin()
			if code := p.Wait(); code != 0 {
				t.Fatalf("exit %d", code)
			}
		})
	}
	t.Run("cancel between actions", func(t *testing.T) {
		p := start(t)
		p.Hello(1, 1)
		p.Send(p.Action("validate", msg{"config": msg{"who": "x"}}))
		p.Until("result")
		p.Send(`{"type":"cancel","reason":"interrupted"}`)
		if code := p.Wait(); code != 0 || len(p.Stdout()) != 2 {
			t.Fatalf("exit %d, stdout %q", code, p.Stdout())
		}
	})
}

// §9: a cancel message, SIGTERM, SIGINT or the end of stdin stop a slow
// apply with a failure result "cancelled", promptly, and exit 0.
func TestCancel(t *testing.T) {
	slow := msg{"config": msg{"who": "Ada", "delay": "30s"}}
	cases := []struct {
		name    string
		trigger func(p *exttest.Proc)
		log     string
	}{
		{"cancel message", func(p *exttest.Proc) { p.Send(`{"type":"cancel","reason":"timeout"}`) }, "cancel received (timeout): stopping"},
		{"unknown reason", func(p *exttest.Proc) { p.Send(`{"type":"cancel","reason":"meteor"}`) }, "cancel received (interrupted): stopping"},
		{"SIGTERM", func(p *exttest.Proc) { p.Signal(syscall.SIGTERM) }, "SIGTERM received: stopping"},
		{"SIGINT", func(p *exttest.Proc) { p.Signal(syscall.SIGINT) }, "SIGINT received: stopping"},
		{"closed stdin", func(p *exttest.Proc) { p.CloseStdin() }, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := start(t)
			p.Hello(1, 1)
			p.Send(p.Action("apply", slow))
			p.Until("progress") // waiting 30s
			began := time.Now()
			c.trigger(p)
			msgs := p.Until("result")
			wantResult(t, msgs, "failure", "cancelled")
			if d := time.Since(began); d > 2*time.Second {
				t.Fatalf("the result came %v after the cancel", d)
			}
			if c.log != "" && exttest.Find(msgs, "log", "message", c.log) == nil {
				t.Fatalf("no log %q: %v", c.log, msgs)
			}
			if exttest.Find(msgs, "output", "", nil) != nil || exttest.Find(msgs, "state", "", nil) != nil {
				t.Fatalf("a cancelled wait sends no output or state: %v", msgs)
			}
			p.CloseStdin()
			if code := p.Wait(); code != 0 {
				t.Fatalf("exit %d; stderr %s", code, p.Stderr())
			}
		})
	}
	t.Run("cancel in the same write as the action", func(t *testing.T) {
		p := start(t)
		p.Hello(1, 1)
		p.Send(p.Action("apply", slow), `{"type":"cancel","reason":"timeout"}`)
		wantResult(t, p.Until("result"), "failure", "cancelled")
		p.CloseStdin()
		if code := p.Wait(); code != 0 {
			t.Fatalf("exit %d", code)
		}
	})
}

// §4: what the extension makes of lines it cannot take.
func TestGarbage(t *testing.T) {
	cases := []struct{ name, input, stderr string }{
		{"not JSON", "garbage\n", "protocol error: input is not a JSON object"},
		{"an array", "[1,2]\n", "protocol error: input is not a JSON object"},
		{"invalid UTF-8", "{\"type\":\"hello\",\"x\":\"\xff\"}\n", "protocol error: input is not a JSON object"},
		{"unknown type", `{"type":"bogus"}` + "\n", "protocol error: unknown message type 'bogus'"},
		{"wrong direction", `{"type":"log","level":"info","message":"m"}` + "\n", "protocol error: message type 'log' is not allowed from orchd"},
		{"action first", `{"type":"action","action":"describe"}` + "\n", "protocol error: expected hello, got action"},
		{"too deep", `{"type":"hello","x":` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + "}\n", "protocol error: message nested deeper than 64 levels"},
		{"line too long", strings.Repeat("x", 1048577) + "\n", "protocol error: line exceeds 1048576 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := start(t)
			p.SendRaw([]byte(c.input))
			if code := p.Wait(); code != 1 {
				t.Fatalf("exit %d", code)
			}
			if len(p.Stdout()) != 0 || !strings.Contains(p.Stderr(), c.stderr) {
				t.Fatalf("stdout %q, stderr %q", p.Stdout(), p.Stderr())
			}
		})
	}
	t.Run("empty lines are ignored", func(t *testing.T) {
		p := start(t)
		p.SendRaw([]byte("\n   \t\r\n"))
		msgs := p.Run("describe", nil)
		wantResult(t, msgs, "success", "")
	})
	t.Run("during the action", func(t *testing.T) {
		p := start(t)
		p.Hello(1, 1)
		p.Send(p.Action("apply", msg{"config": msg{"who": "Ada", "delay": "30s"}}))
		p.Until("progress")
		p.Send("this is not JSON")
		wantResult(t, p.Until("result"), "failure", "cancelled")
		if code := p.Wait(); code != 1 || !strings.Contains(p.Stderr(), "protocol error: input is not a JSON object") {
			t.Fatalf("exit %d, stderr %q", code, p.Stderr())
		}
	})
}

func TestClosedStdin(t *testing.T) {
	p := start(t)
	p.CloseStdin()
	if code := p.Wait(); code != 1 || len(p.Stdout()) != 0 || !strings.Contains(p.Stderr(), "end of input before hello") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, p.Stdout(), p.Stderr())
	}
	p = start(t)
	p.Hello(1, 1)
	p.Signal(syscall.SIGTERM) // orchd stops it so too (§9.6)
	if code := p.Wait(); code != 0 || len(p.Stdout()) != 1 || p.Stderr() != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, p.Stdout(), p.Stderr())
	}
}

// §3, §2.3: started by hand; the manifest beside the example is the one
// the declaration makes.
func TestUsageAndManifest(t *testing.T) {
	p := exttest.Start(t, bin, "apply")
	if code := p.Wait(); code != 2 || len(p.Stdout()) != 0 || !strings.Contains(p.Stderr(), "an orchd extension") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, p.Stdout(), p.Stderr())
	}
	out, err := exec.Command(bin, "--manifest").Output()
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile("orchd-ext-gogreet.manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	if json.Unmarshal(out, &a) != nil || json.Unmarshal(file, &b) != nil || !reflect.DeepEqual(a, b) {
		t.Fatalf("orchd-ext-gogreet.manifest.json is not the manifest the extension declares:\n%s", out)
	}
}

// orchdBin is the orchd to run the sample pipeline with: $ORCHD, else the
// build tree's (build/bin/orchd at the top of the source tree).
func orchdBin(t *testing.T) string {
	if p := os.Getenv("ORCHD"); p != "" {
		return p
	}
	p, err := filepath.Abs(filepath.Join(exttest.Root(t), "..", "..", "..", "build", "bin", "orchd"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// runOrchd runs orchd with args and returns its exit status and output.
func runOrchd(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(orchdBin(t), args...)
	cmd.Env = append(os.Environ(), "ORCHD_EXTENSIONS_PATH=", "ORCHD_PASSPHRASE=", "ORCHD_PASSPHRASE_FILE=")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("orchd %v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// The sample pipeline, end to end with the real orchd: run (validate and
// apply in a session), its outputs, a second run (the state read back:
// nothing changed), plan, destroy; a broken config and a timeout.
func TestOrchd(t *testing.T) {
	if _, err := os.Stat(orchdBin(t)); err != nil {
		t.Skipf("no orchd to run the pipeline with (%v): build it with make at the top of the source tree, or set ORCHD", err)
	}
	extdir, state := t.TempDir(), t.TempDir()
	for _, f := range [][2]string{{bin, "orchd-ext-gogreet"}, {"orchd-ext-gogreet.manifest.json", "orchd-ext-gogreet.manifest.json"}} {
		b, err := os.ReadFile(f[0])
		if err == nil {
			err = os.WriteFile(filepath.Join(extdir, f[1]), b, 0o755)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	common := []string{"pipeline.yaml", "--extensions-dir", extdir, "--state-dir", state}
	outputs := func() string {
		t.Helper()
		code, out := runOrchd(t, append([]string{"outputs", "--json"}, common...)...)
		if code != 0 {
			t.Fatalf("orchd outputs: exit %d\n%s", code, out)
		}
		var all map[string]any
		if err := json.Unmarshal([]byte(out), &all); err != nil {
			t.Fatalf("orchd outputs --json: %v\n%s", err, out)
		}
		return exttest.JSON(all["gogreet.ada"])
	}
	report := func(path string) map[string]any {
		t.Helper()
		b, err := os.ReadFile(path)
		var r struct{ Instances []map[string]any }
		if err == nil {
			err = json.Unmarshal(b, &r)
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range r.Instances {
			if i["id"] == "gogreet.ada" {
				return i
			}
		}
		t.Fatalf("no gogreet.ada in %s", b)
		return nil
	}

	rep := filepath.Join(t.TempDir(), "report.json")
	code, out := runOrchd(t, append([]string{"run", "--report", rep}, common...)...)
	if code != 0 || !strings.Contains(out, "gogreet said: hello, Ada (run 1)") {
		t.Fatalf("orchd run: exit %d\n%s", code, out)
	}
	if got := outputs(); got != `{"message":"hello, Ada","runs":1}` {
		t.Fatalf("outputs after the first run: %s", got)
	}
	if i := report(rep); i["status"] != "success" || i["changed"] != true {
		t.Fatalf("first run: %v", i)
	}

	code, out = runOrchd(t, append([]string{"run", "--report", rep}, common...)...)
	if code != 0 || !strings.Contains(out, "gogreet said: hello, Ada (run 2)") {
		t.Fatalf("second orchd run: exit %d\n%s", code, out)
	}
	if got := outputs(); got != `{"message":"hello, Ada","runs":2}` {
		t.Fatalf("outputs after the second run: %s", got)
	}
	if i := report(rep); i["status"] != "success" || i["changed"] != false {
		t.Fatalf("second run (idempotent): %v", i)
	}

	code, out = runOrchd(t, append([]string{"plan"}, common...)...)
	if code != 0 || !strings.Contains(out, "[gogreet.ada] no change") {
		t.Fatalf("orchd plan: exit %d\n%s", code, out)
	}

	code, out = runOrchd(t, append([]string{"destroy"}, common...)...)
	if code != 0 {
		t.Fatalf("orchd destroy: exit %d\n%s", code, out)
	}
	if got := outputs(); got != "null" && got != "{}" {
		t.Fatalf("outputs after destroy: %s", got)
	}

	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.yaml")
	os.WriteFile(broken, []byte("broken:\n  core:\n    stack: dev\n  gogreet:\n    - name: ada\n      whom: Ada\n"), 0o644)
	code, out = runOrchd(t, "validate", broken, "--extensions-dir", extdir, "--state-dir", state)
	if code != 2 || !strings.Contains(out, "broken.yaml:6:7: error: gogreet.ada: unknown key 'whom' (did you mean 'who'?)") {
		t.Fatalf("orchd validate of a broken config: exit %d\n%s", code, out)
	}

	slow := filepath.Join(dir, "slow.yaml")
	os.WriteFile(slow, []byte("slow:\n  core:\n    stack: dev\n  gogreet:\n    - name: ada\n      who: Ada\n"+
		"      delay: 1m\n      execution: {timeout: 1s, grace: 10s}\n"), 0o644)
	began := time.Now()
	code, out = runOrchd(t, "run", slow, "--extensions-dir", extdir, "--state-dir", state, "--report", rep)
	if i := report(rep); code != 1 || i["status"] != "timed out" || time.Since(began) > 5*time.Second ||
		!strings.Contains(out, "warning: ") || !strings.Contains(out, "received") || !strings.Contains(out, ": stopping") {
		t.Fatalf("a timeout: exit %d after %v, %v\n%s", code, time.Since(began), i, out)
	}
}

// The example passes orchd's conformance runner (orchd ext test) without a
// failure or a warning.
func TestConformance(t *testing.T) {
	if _, err := os.Stat(orchdBin(t)); err != nil {
		t.Skipf("no orchd to run ext test with (%v): build it with make at the top of the source tree, or set ORCHD", err)
	}
	dir := t.TempDir()
	for _, f := range [][2]string{{bin, "orchd-ext-gogreet"}, {"orchd-ext-gogreet.manifest.json", "orchd-ext-gogreet.manifest.json"}, {"pipeline.yaml", "pipeline.yaml"}} {
		b, err := os.ReadFile(f[0])
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, f[1]), b, 0o755)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	code, out := runOrchd(t, "ext", "test", dir)
	if code != 0 || !strings.Contains(out, " 0 failed, 0 warnings,") {
		t.Fatalf("orchd ext test: exit %d\n%s", code, out)
	}
}
