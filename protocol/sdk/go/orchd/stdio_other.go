//go:build !linux

package orchd

import "os"

// redirectStdio: only on Linux (orchd's platform) are the protocol's pipes
// moved off fds 0 and 1; elsewhere handlers must not use os.Stdout.
func redirectStdio() (in, out *os.File) { return os.Stdin, os.Stdout }
