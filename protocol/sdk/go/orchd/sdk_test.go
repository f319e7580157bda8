package orchd_test

// The SDK as a real extension (internal/testext, built with go build) over
// real pipes: what examples/gogreet does not show. The last test runs
// testext under the real orchd.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"orchd.dev/sdk/internal/exttest"
)

type msg = exttest.Msg

var testext string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "orchd-sdk-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testext = filepath.Join(dir, "orchd-ext-testext")
	if out, err := exec.Command("go", "build", "-o", testext, "../internal/testext").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func run(t *testing.T, config msg) (*exttest.Proc, []msg) {
	t.Helper()
	p := exttest.Start(t, testext)
	return p, p.Run("apply", msg{"config": config})
}

func result(t *testing.T, msgs []msg, status, summary string) msg {
	t.Helper()
	r := msgs[len(msgs)-1]
	if r["type"] != "result" || r["status"] != status || (summary != "" && r["summary"] != summary) {
		t.Fatalf("expected a %s result %q, got %s", status, summary, exttest.JSON(r))
	}
	return r
}

func output(t *testing.T, msgs []msg, key string) msg {
	t.Helper()
	o := exttest.Find(msgs, "output", "key", key)
	if o == nil {
		t.Fatalf("no output %q in %v", key, msgs)
	}
	return o
}

// Whatever a handler (or a program it starts) prints on stdout reaches
// stderr, never the protocol stream (exttest fails on any invalid line).
func TestStrayOutput(t *testing.T) {
	p, msgs := run(t, msg{"mode": "print"})
	result(t, msgs, "success", "printed")
	for _, s := range []string{"stray line on stdout", "another stray line", "child-stdout", "child-stderr"} {
		if !strings.Contains(p.Stderr(), s) {
			t.Errorf("stderr lacks %q: %q", s, p.Stderr())
		}
	}
	if exttest.Find(msgs, "log", "message", "logged mode=print n=2") == nil {
		t.Errorf("slog record not logged: %v", msgs)
	}
}

// §4.1, extension -> orchd: a value too large for a line is sent in a
// file of the workdir; a log line too long is cut.
func TestLargeValuesInFiles(t *testing.T) {
	const size = 2 << 20
	p, msgs := run(t, msg{"mode": "big", "size": size})
	result(t, msgs, "success", fmt.Sprintf("sent %d bytes", size))
	read := func(m msg, want string) {
		t.Helper()
		name, _ := m["file"].(string)
		if name == "" || m["value"] != nil || m["state"] != nil {
			t.Fatalf("expected the value in a file: %.200s", exttest.JSON(m))
		}
		b, err := os.ReadFile(filepath.Join(p.Workdir(), name))
		if err != nil || string(b) != want {
			t.Fatalf("%s: %.100q %v", name, b, err)
		}
	}
	big := strings.Repeat("x", size)
	read(output(t, msgs, "big"), `"`+big+`"`)
	read(exttest.Last(msgs, "state"), `{"blob":"`+big+`"}`)
	l := exttest.Find(msgs, "log", "level", "info")
	if s, _ := l["message"].(string); !strings.HasSuffix(s, "...") || len(s) > 1<<20 {
		t.Fatalf("log line not cut: %d bytes", len(s))
	}
}

// §4.1, orchd -> extension: config, state and outputs in files.
func TestValuesFromFiles(t *testing.T) {
	p := exttest.Start(t, testext)
	files := map[string]string{
		"config":  `{"mode": "echo",` + "\n" + ` "extra": {"k": [1, 2.5, null]}}`,
		"state":   "\n[1, {\"a\": true}]\n",
		"outputs": `{"url": "http://x/"}`,
	}
	fields := msg{"config": exttest.Absent, "state": exttest.Absent, "outputs": exttest.Absent}
	for name, text := range files {
		path := filepath.Join(p.Workdir(), ".orchd-"+name+".json")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		fields[name+"_file"] = path
	}
	msgs := p.Run("apply", fields)
	result(t, msgs, "success", "echoed")
	for key, want := range map[string]string{
		"config":   `{"extra":{"k":[1,2.5,null]},"mode":"echo"}`,
		"state":    `[1,{"a":true}]`,
		"outputs":  `{"url":"http://x/"}`,
		"instance": `"i/dev-x-i"`,
	} {
		if got := exttest.JSON(output(t, msgs, key)["value"]); got != want {
			t.Errorf("%s: got %s, want %s", key, got, want)
		}
	}

	t.Run("unreadable", func(t *testing.T) {
		p := exttest.Start(t, testext)
		path := filepath.Join(p.Workdir(), "c.json")
		os.WriteFile(path, []byte(strings.Repeat("[", 65)+strings.Repeat("]", 65)), 0o600)
		msgs := p.Run("apply", msg{"config": exttest.Absent, "config_file": path})
		result(t, msgs, "failure", "cannot read the action's config_file: '"+path+"': nested deeper than 64 levels")
	})
}

func TestSecrets(t *testing.T) {
	_, msgs := run(t, msg{"mode": "secret"})
	result(t, msgs, "success", "secrets sent")
	var order []string
	for _, m := range msgs {
		order = append(order, fmt.Sprint(m["type"]))
	}
	if got := strings.Join(order, " "); !strings.HasPrefix(got, "mask log output output state") {
		t.Fatalf("the mask must come before the line that shows the value: %s", got)
	}
	if o := output(t, msgs, "token"); o["secret"] != true || o["value"] != "s3cr3t-i" {
		t.Fatalf("secret output: %v", o)
	}
	if o := output(t, msgs, "public"); o["secret"] != false {
		t.Fatalf("public output: %v", o)
	}
	if s := exttest.Last(msgs, "state"); s["secret"] != true {
		t.Fatalf("secret state: %v", s)
	}
}

// A handler that ignores its context: the SDK sends the failure itself
// after CancelWait (1 s in testext) and exits 0, well within the grace.
func TestStubbornHandler(t *testing.T) {
	p := exttest.Start(t, testext)
	p.Hello(1, 1)
	p.Send(p.Action("apply", msg{"config": msg{"mode": "stubborn"}}))
	p.Until("log")
	began := time.Now()
	p.Send(`{"type":"cancel","reason":"timeout"}`)
	msgs := p.Until("result")
	result(t, msgs, "failure", "cancelled")
	if d := time.Since(began); d < 900*time.Millisecond || d > 3*time.Second {
		t.Fatalf("result %v after the cancel", d)
	}
	if exttest.Find(msgs, "log", "message", "the action did not stop within 1s after the cancel") == nil {
		t.Fatalf("no warning: %v", msgs)
	}
	if code := p.Wait(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// In a session, nothing a handler's goroutine writes after the result
// reaches stdout (§7.6).
func TestNothingAfterTheResult(t *testing.T) {
	p := exttest.Start(t, testext)
	p.Hello(1, 1)
	p.Send(p.Action("apply", msg{"config": msg{"mode": "late"}}))
	p.Until("result")
	p.WaitStderr("late log: orchd: the action has ended")
	p.CloseStdin()
	if code := p.Wait(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if out := p.Stdout(); !strings.Contains(out[len(out)-1], `"type":"result"`) {
		t.Fatalf("stdout after the result: %q", out)
	}
}

// orchd.Command: a cancel SIGTERMs the tool, which can clean up; the
// handler still sends its state, then the failure.
func TestCommandCancel(t *testing.T) {
	p := exttest.Start(t, testext)
	p.Hello(1, 1)
	p.Send(p.Action("apply", msg{"config": msg{"mode": "command"}}))
	p.WaitStderr("started")
	p.Send(`{"type":"cancel","reason":"interrupted"}`)
	msgs := p.Until("result")
	result(t, msgs, "failure", "cancelled")
	p.WaitStderr("got-term") // the command got SIGTERM, not SIGKILL
	if s := exttest.Last(msgs, "state"); exttest.JSON(s["state"]) != `{"phase":"stopped"}` {
		t.Fatalf("state %v", s)
	}
	if code := p.Wait(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// §6.3: a fetch request and its response (the test plays orchd's part).
func TestFetch(t *testing.T) {
	cfg := msg{"mode": "fetch", "url": "https://example.invalid/f.txt", "sha256": strings.Repeat("ab", 32)}
	start := func(t *testing.T) (*exttest.Proc, msg) {
		p := exttest.Start(t, testext)
		p.Hello(1, 1)
		p.Send(p.Action("apply", msg{"config": cfg}))
		req := p.Until("request")[0]
		want := `{"id":1,"op":"fetch","source":{"dest":"fetched.txt","sha256":"` + strings.Repeat("ab", 32) +
			`","url":"https://example.invalid/f.txt"},"type":"request"}`
		if got := exttest.JSON(req); got != want {
			t.Fatalf("request:\n got %s\nwant %s", got, want)
		}
		return p, req
	}
	t.Run("ok", func(t *testing.T) {
		p, _ := start(t)
		os.WriteFile(filepath.Join(p.Workdir(), "fetched.txt"), []byte("content"), 0o644)
		p.Send(`{"type":"response","id":7,"ok":false,"error":"not for you"}`, // ignored: no such request
			`{"type":"response","id":1,"ok":true,"result":{"type":"url","path":"fetched.txt","sha256":"`+strings.Repeat("ab", 32)+`"}}`)
		msgs := p.Until("result")
		result(t, msgs, "success", "fetched fetched.txt")
		if got := exttest.JSON(output(t, msgs, "fetched")["value"]); !strings.Contains(got, `"content":"content"`) {
			t.Fatalf("fetched %s", got)
		}
		p.CloseStdin()
		p.Wait()
	})
	t.Run("refused", func(t *testing.T) {
		p, _ := start(t)
		p.Send(`{"type":"response","id":1,"ok":false,"error":"source not allowed: 'path' goes through the symbolic link 'x'"}`)
		msgs := p.Until("result")
		if got := output(t, msgs, "refused")["value"]; got != "source not allowed | source not allowed: 'path' goes through the symbolic link 'x'" {
			t.Fatalf("refused: %v", got)
		}
	})
	t.Run("cancelled while waiting", func(t *testing.T) {
		p, _ := start(t)
		p.Send(`{"type":"cancel","reason":"timeout"}`)
		result(t, p.Until("result"), "failure", "cancelled")
		// a cancelled action ends the process: no wait for the response
		if code := p.Wait(); code != 0 {
			t.Fatalf("exit %d", code)
		}
	})
}

func TestRequestUnknownOp(t *testing.T) {
	p := exttest.Start(t, testext)
	p.Hello(1, 1)
	p.Send(p.Action("apply", msg{"config": msg{"mode": "request", "extra": msg{"x": 1}}}))
	if got := exttest.JSON(p.Until("request")[0]); got != `{"id":1,"op":"bogus.op","type":"request","x":1}` {
		t.Fatalf("request %s", got)
	}
	p.Send(`{"type":"response","id":1,"ok":false,"error":"unknown request op 'bogus.op'"}`)
	result(t, p.Until("result"), "failure", "bogus.op: unknown request op 'bogus.op'")
}

func TestPanic(t *testing.T) {
	p := exttest.Start(t, testext)
	p.Hello(1, 1)
	p.Send(p.Action("apply", msg{"config": msg{"mode": "panic"}}))
	result(t, p.Until("result"), "failure", "panic: assignment to entry in nil map")
	if code := p.Wait(); code != 1 || !strings.Contains(p.Stderr(), "goroutine") {
		t.Fatalf("exit %d, stderr %q", code, p.Stderr())
	}
}

func TestRetryable(t *testing.T) {
	_, msgs := run(t, msg{"mode": "retryable"})
	result(t, msgs, "failure", "the service is busy")
	if e := exttest.Find(msgs, "error", "", nil); e == nil || e["retryable"] != true || e["message"] != "the service is busy" {
		t.Fatalf("error message: %v", msgs)
	}
}

// A state orchd's parser would refuse is not sent: SetState says why.
func TestTooDeep(t *testing.T) {
	_, msgs := run(t, msg{"mode": "deep"})
	result(t, msgs, "success", "deep")
	if got := output(t, msgs, "deep_error")["value"]; got != "state: nested deeper than 64 levels" {
		t.Fatalf("deep_error %v", got)
	}
	if exttest.Find(msgs, "state", "", nil) != nil {
		t.Fatal("a state was sent")
	}
}

func TestConfigErrorsOfEnum(t *testing.T) {
	_, msgs := run(t, msg{"mode": "nope", "sha265": "x"})
	r := result(t, msgs, "failure", "invalid configuration: unknown key 'sha265' (did you mean 'sha256'?) (and 1 more)")
	if got := exttest.JSON(r["errors"]); got != `[{"message":"unknown key 'sha265' (did you mean 'sha256'?)","path":"sha265"},`+
		`{"message":"must be one of echo, print, big, secret, stubborn, command, fetch, request, panic, retryable, deep, late","path":"mode"}]` {
		t.Fatalf("errors %s", got)
	}
}

// testext under the real orchd: values in files both ways, a secret output
// (stored encrypted, shown as ***) and a fetch from a local HTTP server.
func TestOrchdTestext(t *testing.T) {
	orchd := os.Getenv("ORCHD")
	if orchd == "" {
		orchd = filepath.Join(exttest.Root(t), "..", "..", "..", "build", "bin", "orchd")
	}
	if _, err := os.Stat(orchd); err != nil {
		t.Skipf("no orchd to run testext with (%v): build it with make at the top of the source tree, or set ORCHD", err)
	}
	extdir, dir := t.TempDir(), t.TempDir()
	b, _ := os.ReadFile(testext)
	os.WriteFile(filepath.Join(extdir, "orchd-ext-testext"), b, 0o755)
	manifest, _ := exec.Command(testext, "--manifest").Output()
	os.WriteFile(filepath.Join(extdir, "orchd-ext-testext.manifest.json"), manifest, 0o644)

	content := []byte("fetched through orchd\n")
	sum := sha256.Sum256(content)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(content) })}
	go srv.Serve(ln)
	defer srv.Close()

	pipeline := filepath.Join(dir, "pipeline.yaml")
	os.WriteFile(pipeline, []byte(fmt.Sprintf(`sdk:
  core:
    stack: dev
  testext:
    - name: big
      mode: big
      size: 1500000
    - name: echo
      mode: echo
      extra:
        long: ${{ testext.big.outputs.big }}
    - name: secret
      mode: secret
    - name: fetch
      mode: fetch
      url: http://%s/f.txt
      sha256: %s
`, ln.Addr(), hex.EncodeToString(sum[:]))), 0o644)
	orchdRun := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(orchd, append(args, pipeline, "--extensions-dir", extdir, "--state-dir", filepath.Join(dir, "state"))...)
		cmd.Env = append(os.Environ(), "ORCHD_PASSPHRASE=sdk-test", "XDG_CACHE_HOME="+filepath.Join(dir, "cache"), "ORCHD_EXTENSIONS_PATH=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			var ee *exec.ExitError
			errors.As(err, &ee)
			t.Fatalf("orchd %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	out := orchdRun("run")
	if strings.Contains(out, "hunter2") || strings.Contains(out, "s3cr3t") {
		t.Fatalf("a secret was printed:\n%.2000s", out)
	}
	var outputs map[string]map[string]any
	if err := json.Unmarshal([]byte(orchdRun("outputs", "--json")), &outputs); err != nil {
		t.Fatal(err)
	}
	if got := outputs["testext.secret"]; got["token"] != "***" || got["public"] != "visible" {
		t.Errorf("secret outputs: %v", got)
	}
	if got, _ := outputs["testext.big"]["big"].(string); len(got) != 1500000 {
		t.Errorf("big output: %d bytes", len(got))
	}
	// the 1.5 MB output came back in the echo instance's config: in a file
	if got := exttest.JSON(outputs["testext.echo"]["config"]); !strings.Contains(got, strings.Repeat("x", 1500000)) {
		t.Errorf("echo config: %.200s", got)
	}
	if got := exttest.JSON(outputs["testext.fetch"]["fetched"]); !strings.Contains(got, `"content":"fetched through orchd\n"`) {
		t.Errorf("fetched: %s", got)
	}
}

// §9.5: orchd stopped reading. A write fails with EPIPE (the process does
// not die by SIGPIPE): the action is cancelled and the process exits 1.
func TestStdoutClosed(t *testing.T) {
	cmd := exec.Command(testext)
	cmd.Dir = t.TempDir()
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	fmt.Fprintln(stdin, `{"type":"hello","protocol":{"min":1,"max":1},"orchd_version":"0.1.0"}`)
	line := make([]byte, 4096)
	if n, err := stdout.Read(line); err != nil || !strings.Contains(string(line[:n]), `"type":"hello"`) {
		t.Fatalf("hello: %q %v", line[:n], err)
	}
	stdout.Close()
	action, _ := json.Marshal(msg{"type": "action", "action": "apply", "instance": "i", "stack": "s",
		"config": msg{"mode": "command"}, "state": nil, "outputs": msg{}, "workdir": cmd.Dir})
	fmt.Fprintf(stdin, "%s\n", action)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("expected exit status 1, got %v; stderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "cannot write to orchd") {
		t.Fatalf("stderr: %s", stderr.String())
	}
}
