package orchd

import (
	"context"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Command is exec.CommandContext set up for a tool a handler runs: its
// stdout and stderr are the extension's stderr, so each line it prints
// reaches orchd's log without a message per line (PROTOCOL.md §4; to log
// them at a level of their own, read its output and call Action.Log
// instead), its stdin is /dev/null, and when ctx is cancelled it gets
// SIGTERM, then SIGKILL if it has not exited 5 s later (PROTOCOL.md §9.2).
// It stays in the extension's process group, which orchd signals too.
func Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}
