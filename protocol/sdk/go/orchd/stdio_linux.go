//go:build linux

package orchd

import (
	"os"
	"syscall"
)

// redirectStdio moves the protocol's pipes off fds 0 and 1 (to private,
// close-on-exec descriptors) and points fd 0 at /dev/null and fd 1 at
// stderr: a stray print, or a program a handler starts with the process's
// stdout, cannot corrupt the protocol stream or read orchd's messages.
// On any failure it leaves the descriptors as they are.
func redirectStdio() (in, out *os.File) {
	inFd, err := syscall.Dup(0)
	if err != nil {
		return os.Stdin, os.Stdout
	}
	outFd, err := syscall.Dup(1)
	if err != nil {
		syscall.Close(inFd)
		return os.Stdin, os.Stdout
	}
	null, err := syscall.Open(os.DevNull, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		syscall.Close(inFd)
		syscall.Close(outFd)
		return os.Stdin, os.Stdout
	}
	syscall.CloseOnExec(inFd)
	syscall.CloseOnExec(outFd)
	// should either fail, the protocol is still on the private descriptors
	syscall.Dup3(null, 0, 0)
	syscall.Dup3(2, 1, 0)
	syscall.Close(null)
	return os.NewFile(uintptr(inFd), "orchd-stdin"), os.NewFile(uintptr(outFd), "orchd-stdout")
}
