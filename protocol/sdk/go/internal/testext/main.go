// Command testext is an extension for the SDK's own tests (orchd_test.go):
// each config "mode" exercises one part of the SDK that the example
// (examples/gogreet) does not.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"orchd.dev/sdk/orchd"
)

type config struct {
	Mode  string         `json:"mode" orchd:"required,enum=echo|print|big|secret|stubborn|command|fetch|request|panic|retryable|deep|late"`
	URL   string         `json:"url"`
	Sum   string         `json:"sha256"`
	Size  int            `json:"size"`
	Extra map[string]any `json:"extra"`
}

func apply(ctx context.Context, a *orchd.Action) (orchd.Result, error) {
	var cfg config
	if err := a.DecodeConfig(&cfg); err != nil {
		return orchd.Result{}, err
	}
	switch cfg.Mode {
	case "echo": // what the action carried, config_file & co. included
		a.Output("config", a.Config)
		a.Output("outputs", a.Outputs)
		var st any
		if ok, err := a.DecodeState(&st); ok && err == nil {
			a.Output("state", st)
		}
		a.Output("instance", a.Instance+"/"+a.Stack)
		return orchd.Done("echoed"), nil
	case "print": // stray prints must not reach the protocol stream
		fmt.Println("stray line on stdout")
		os.Stdout.WriteString("another stray line\n")
		cmd := orchd.Command(ctx, "sh", "-c", "echo child-stdout; echo child-stderr >&2")
		if err := cmd.Run(); err != nil {
			return orchd.Result{}, err
		}
		a.Logger().Info("logged", "mode", cfg.Mode, "n", 2)
		return orchd.Unchanged("printed"), nil
	case "big": // values too large for a line go in files (§4.1)
		big := strings.Repeat("x", cfg.Size)
		if err := a.Output("big", big); err != nil {
			return orchd.Result{}, err
		}
		if err := a.SetState(map[string]any{"blob": big}); err != nil {
			return orchd.Result{}, err
		}
		a.Log(orchd.LevelInfo, "%s", big) // cut to fit a line
		return orchd.Changed("sent %d bytes", cfg.Size), nil
	case "secret":
		a.Mask("hunter2")
		a.Log(orchd.LevelInfo, "the token is hunter2")
		a.SecretOutput("token", "s3cr3t-"+a.Instance)
		a.Output("public", "visible")
		a.SetSecretState(map[string]string{"token": "s3cr3t-" + a.Instance})
		return orchd.Changed("secrets sent"), nil
	case "stubborn": // ignores ctx: the SDK answers after CancelWait
		a.Log(orchd.LevelInfo, "started")
		time.Sleep(time.Minute)
		return orchd.Changed("too late"), nil
	case "late": // keeps writing after its result: nothing may reach stdout
		a.Log(orchd.LevelInfo, "started")
		go func() {
			time.Sleep(200 * time.Millisecond)
			err := a.Log(orchd.LevelInfo, "after the result")
			fmt.Fprintf(os.Stderr, "late log: %v\n", err)
		}()
		return orchd.Done("done"), nil
	case "command": // a tool gets SIGTERM when the action is cancelled
		a.SetState(map[string]string{"phase": "running"})
		cmd := orchd.Command(ctx, "sh", "-c", "trap 'kill $!; echo got-term >&2; exit 5' TERM; echo started >&2; sleep 30 & wait")
		err := cmd.Run()
		a.SetState(map[string]string{"phase": "stopped"})
		return orchd.Changed("ran"), err
	case "fetch":
		got, err := a.Fetch(ctx, orchd.Source{URL: cfg.URL, SHA256: cfg.Sum, Dest: "fetched.txt"})
		var re *orchd.RequestError
		if errors.As(err, &re) {
			a.Output("refused", re.Reason()+" | "+re.Message)
			return orchd.Unchanged("refused"), nil
		}
		if err != nil {
			return orchd.Result{}, err
		}
		data, err := os.ReadFile(got.Path)
		if err != nil {
			return orchd.Result{}, err
		}
		a.Output("fetched", map[string]string{"type": got.Type, "path": got.Path, "sha256": got.SHA256, "content": string(data)})
		return orchd.Changed("fetched %s", got.Path), nil
	case "request": // an op orchd may not know
		res, err := a.Request(ctx, "bogus.op", cfg.Extra)
		if err != nil {
			return orchd.Result{}, err
		}
		a.Output("result", res)
		return orchd.Done("asked"), nil
	case "panic":
		var m map[string]int
		m["boom"]++
	case "retryable":
		return orchd.Result{}, orchd.Retryable(errors.New("the service is busy"))
	case "deep": // too deep for orchd: refused before anything is sent
		var v any = 1
		for i := 0; i < 63; i++ {
			v = []any{v}
		}
		err := a.SetState(v)
		a.Output("deep_error", fmt.Sprint(err))
		return orchd.Unchanged("deep"), nil
	}
	return orchd.Result{}, fmt.Errorf("mode %s: nothing to do", cfg.Mode)
}

func main() {
	orchd.Main(&orchd.Extension{
		Name:          "testext",
		Version:       "1.2.3",
		Description:   "the Go SDK's test extension",
		ConfigSchema:  orchd.SchemaOf(config{}),
		ManifestExtra: map[string]any{"secrets": true},
		Apply:         apply,
		CancelWait:    time.Second,
	})
}
