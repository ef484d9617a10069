//go:build unix

package testutil

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// BlockingPipe returns both ends of a pipe as a parent process hands it to a
// child (ssh to its ProxyCommand): blocking descriptors, files outside the
// runtime's poller (os.Stdout's kind). Both are closed when the test ends.
func BlockingPipe(t testing.TB) (r, w *os.File) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe(p[:]); err != nil {
		t.Fatal(err)
	}
	r, w = os.NewFile(uintptr(p[0]), "pipe-r"), os.NewFile(uintptr(p[1]), "pipe-w")
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// Nonblocking reports whether f's descriptor has O_NONBLOCK set.
func Nonblocking(t testing.TB, f *os.File) bool {
	t.Helper()
	fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fl&unix.O_NONBLOCK != 0
}
