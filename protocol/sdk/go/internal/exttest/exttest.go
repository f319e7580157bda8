// Package exttest drives an extension executable as orchd does, over real
// pipes, for the SDK's tests. Every line the extension writes on stdout is
// checked with orchd.ParseLine: anything but a valid message fails the test.
package exttest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"orchd.dev/sdk/orchd"
)

// Timeout bounds every wait.
const Timeout = 15 * time.Second

// Msg is a decoded message.
type Msg = map[string]any

// Build builds package pkg (a go build argument, e.g. "./examples/gogreet"
// relative to dir) into out and returns out.
func Build(t testing.TB, dir, pkg, out string) string {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// Proc is a running extension.
type Proc struct {
	t     testing.TB
	cmd   *exec.Cmd
	stdin io.WriteCloser
	msgs  chan Msg
	mu    sync.Mutex
	errb  bytes.Buffer
	raw   []string // every stdout line
	done  chan struct{}
	code  int
}

type lockedWriter struct{ p *Proc }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.errb.Write(b)
}

// Start starts bin in a new working directory (the workdir) with args.
func Start(t testing.TB, bin string, args ...string) *Proc {
	t.Helper()
	p := &Proc{t: t, msgs: make(chan Msg, 1024), done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = t.TempDir()
	p.cmd.Stderr = lockedWriter{p}
	p.cmd.WaitDelay = 2 * time.Second // a grandchild may hold stderr open
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		br := bufio.NewReaderSize(stdout, 4<<20)
		for {
			line, err := br.ReadBytes('\n')
			if len(line) > 0 {
				text := strings.TrimSuffix(string(line), "\n")
				p.mu.Lock()
				p.raw = append(p.raw, text)
				p.mu.Unlock()
				v := orchd.ParseLine(orchd.FromExt, []byte(text))
				if v.Kind != orchd.Valid || !strings.HasSuffix(string(line), "\n") {
					t.Errorf("the extension wrote a line that is not a valid message (%s): %.300q", v, line)
				} else {
					p.msgs <- v.Message
				}
			}
			if err != nil {
				break
			}
		}
		close(p.msgs)
		err := p.cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.Is(err, exec.ErrWaitDelay): // a grandchild kept stderr
			p.code = p.cmd.ProcessState.ExitCode()
		case errors.As(err, &ee):
			p.code = ee.ExitCode() // -1: killed by a signal
		default:
			t.Errorf("wait: %v", err)
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// Workdir is the process's working directory.
func (p *Proc) Workdir() string { return p.cmd.Dir }

// Send writes the lines, each with its '\n', in one write.
func (p *Proc) Send(lines ...string) {
	p.t.Helper()
	p.SendRaw([]byte(strings.Join(lines, "\n") + "\n"))
}

// SendRaw writes b as is.
func (p *Proc) SendRaw(b []byte) {
	p.t.Helper()
	if _, err := p.stdin.Write(b); err != nil {
		p.t.Fatalf("write to the extension: %v", err)
	}
}

// CloseStdin closes the extension's stdin (orchd does after the result).
func (p *Proc) CloseStdin() { p.stdin.Close() }

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) { p.cmd.Process.Signal(sig) }

// Next is the next message, or nil at the end of stdout.
func (p *Proc) Next() Msg {
	p.t.Helper()
	select {
	case m, ok := <-p.msgs:
		if !ok {
			return nil
		}
		return m
	case <-time.After(Timeout):
		p.t.Fatalf("no message from the extension within %v; stderr:\n%s", Timeout, p.Stderr())
	}
	return nil
}

// Until returns the messages up to and including the first of type typ
// (the last element); it fails the test if stdout ends first.
func (p *Proc) Until(typ string) []Msg {
	p.t.Helper()
	var got []Msg
	for {
		m := p.Next()
		if m == nil {
			p.t.Fatalf("stdout ended before a %s message; got %v; stderr:\n%s", typ, got, p.Stderr())
		}
		got = append(got, m)
		if m["type"] == typ {
			return got
		}
	}
}

// Hello sends orchd's hello for the range lo..hi and returns the answer
// (a hello, or an error).
func (p *Proc) Hello(lo, hi int) Msg {
	p.t.Helper()
	p.Send(fmt.Sprintf(`{"type":"hello","protocol":{"min":%d,"max":%d},"orchd_version":"0.1.0"}`, lo, hi))
	m := p.Next()
	if m == nil {
		p.t.Fatalf("no hello; stderr:\n%s", p.Stderr())
	}
	return m
}

// Wait waits for the process to exit and returns its exit status (-1 when
// killed by a signal).
func (p *Proc) Wait() int {
	p.t.Helper()
	for range p.msgs { // anything left
	}
	select {
	case <-p.done:
	case <-time.After(Timeout):
		p.t.Fatalf("the extension did not exit within %v; stderr:\n%s", Timeout, p.Stderr())
	}
	return p.code
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stderr is what the extension wrote on stderr so far.
func (p *Proc) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.errb.String()
}

// Stdout is every line the extension wrote on stdout so far.
func (p *Proc) Stdout() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.raw...)
}

// WaitStderr waits until stderr contains s.
func (p *Proc) WaitStderr(s string) {
	p.t.Helper()
	deadline := time.Now().Add(Timeout)
	for !strings.Contains(p.Stderr(), s) {
		if time.Now().After(deadline) {
			p.t.Fatalf("stderr never said %q:\n%s", s, p.Stderr())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Absent, as the value of a field given to Action, leaves the field out.
var Absent = &struct{ absent bool }{true}

// Action is an action message for action with the given fields over the
// defaults (instance "i", stack "dev-x-i", config {}, state null, outputs
// {}, workdir: the process's).
func (p *Proc) Action(action string, fields Msg) string {
	m := Msg{"type": "action", "action": action}
	if action != "describe" {
		m["instance"], m["stack"], m["config"] = "i", "dev-x-i", Msg{}
		m["state"], m["outputs"], m["workdir"] = nil, Msg{}, p.Workdir()
	}
	for k, v := range fields {
		if v == Absent {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		p.t.Fatal(err)
	}
	return string(b)
}

// Run is one whole conversation: hello, one action, its messages (the
// result last), stdin closed, exit status 0.
func (p *Proc) Run(action string, fields Msg) []Msg {
	p.t.Helper()
	if h := p.Hello(1, 1); h["type"] != "hello" {
		p.t.Fatalf("expected a hello, got %v", h)
	}
	p.Send(p.Action(action, fields))
	msgs := p.Until("result")
	p.CloseStdin()
	if code := p.Wait(); code != 0 {
		p.t.Fatalf("exit status %d after the result; stderr:\n%s", code, p.Stderr())
	}
	return msgs
}

// Find is the first message of type typ whose field key (when not "")
// equals value, or nil.
func Find(msgs []Msg, typ, key string, value any) Msg {
	for _, m := range msgs {
		if m["type"] == typ && (key == "" || fmt.Sprint(m[key]) == fmt.Sprint(value)) {
			return m
		}
	}
	return nil
}

// Last is the last message of type typ, or nil.
func Last(msgs []Msg, typ string) Msg {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i]["type"] == typ {
			return msgs[i]
		}
	}
	return nil
}

// JSON is v as compact JSON (json.Number as written), for comparisons.
func JSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	return string(b)
}

// Root is the top directory of the SDK's module (holding go.mod), found
// from the current directory upwards.
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found")
		}
		dir = parent
	}
}
