// Command orchd-ext-gogreet is an example orchd extension written with the
// Go SDK (orchd.dev/sdk/orchd). It does what examples/extensions/python's
// pydemo does: apply writes "<greeting>, <who>" to greeting.txt in its
// workdir, outputs the message and a run counter, and keeps
// {who, greeting, runs} in its state, which plan and apply read back to
// tell whether anything changes; destroy removes the file and the state.
//
// Build: go build -o orchd-ext-gogreet ./examples/gogreet
package main

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"orchd.dev/sdk/orchd"
)

type config struct {
	Who      string        `json:"who" orchd:"required,nonempty" desc:"who to greet"`
	Greeting string        `json:"greeting" desc:"the greeting"`
	Delay    time.Duration `json:"delay" desc:"wait this long before greeting (to try cancellation)"`
}

type state struct {
	Who      string `json:"who"`
	Greeting string `json:"greeting"`
	Runs     int    `json:"runs"`
}

// load decodes the config (errors by path) and the previous state.
func load(a *orchd.Action) (config, state, error) {
	cfg := config{Greeting: "hello"}
	var st state
	if err := a.DecodeConfig(&cfg); err != nil {
		return cfg, st, err
	}
	if _, err := a.DecodeState(&st); err != nil {
		a.Log(orchd.LevelWarning, "previous state ignored: %v", err)
	}
	return cfg, st, nil
}

func differs(cfg config, st state) bool { return st.Who != cfg.Who || st.Greeting != cfg.Greeting }

func validate(ctx context.Context, a *orchd.Action) (orchd.Result, error) {
	_, _, err := load(a)
	return orchd.Unchanged("configuration is valid"), err
}

func plan(ctx context.Context, a *orchd.Action) (orchd.Result, error) {
	cfg, st, err := load(a)
	if err != nil {
		return orchd.Result{}, err
	}
	if differs(cfg, st) {
		return orchd.Changed("would greet %s", cfg.Who), nil
	}
	return orchd.Unchanged("no change"), nil
}

func apply(ctx context.Context, a *orchd.Action) (orchd.Result, error) {
	cfg, st, err := load(a)
	if err != nil {
		return orchd.Result{}, err
	}
	if a.HasState() {
		a.Log(orchd.LevelDebug, "previous state: runs=%d who=%s", st.Runs, st.Who)
	}
	if cfg.Delay > 0 {
		a.Progress(0, "waiting %v", cfg.Delay)
		select {
		case <-time.After(cfg.Delay):
		case <-ctx.Done():
			return orchd.Result{}, ctx.Err() // nothing done yet: the SDK reports "cancelled"
		}
	}
	message := cfg.Greeting + ", " + cfg.Who
	a.Progress(50, "writing greeting.txt")
	if err := os.WriteFile(filepath.Join(a.Workdir, "greeting.txt"), []byte(message+"\n"), 0o644); err != nil {
		return orchd.Result{}, err
	}
	a.Log(orchd.LevelInfo, "%s", message)
	a.Output("message", message)
	a.Output("runs", st.Runs+1)
	a.SetState(state{Who: cfg.Who, Greeting: cfg.Greeting, Runs: st.Runs + 1})
	return orchd.ChangedIf(differs(cfg, st), "greeted %s", cfg.Who), nil
}

func destroy(ctx context.Context, a *orchd.Action) (orchd.Result, error) {
	err := os.Remove(filepath.Join(a.Workdir, "greeting.txt"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return orchd.Result{}, err
	}
	a.SetState(nil)
	if err == nil {
		return orchd.Changed("removed greeting.txt"), nil
	}
	return orchd.ChangedIf(a.HasState(), "nothing to destroy"), nil
}

func main() {
	orchd.Main(&orchd.Extension{
		Name:            "gogreet",
		Version:         "0.1.0",
		MinOrchdVersion: "0.1.0",
		Description:     "example extension in Go (orchd SDK): greets someone, counts runs",
		ConfigSchema:    orchd.SchemaOf(config{Greeting: "hello"}),
		Validate:        validate,
		Plan:            plan,
		Apply:           apply,
		Destroy:         destroy,
	})
}
