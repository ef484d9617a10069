//go:build unix

package cli

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/devgate/devgate/internal/stdpipe"
)

// blockingPipe is a pipe as ssh hands it to its ProxyCommand.
func blockingPipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe(p[:]); err != nil {
		t.Fatal(err)
	}
	r, w = os.NewFile(uintptr(p[0]), "r"), os.NewFile(uintptr(p[1]), "w")
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

func isNonblocking(f *os.File) bool {
	fl, _ := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	return fl&unix.O_NONBLOCK != 0
}

// connect's stdin and stdout go through stdpipe (no thread blocked in a
// system call; the data channel's reader writes output without waiting)
// only when they are pipes or sockets of their own, as ssh gives its
// ProxyCommand, and stdout only on the Session Manager path; a terminal, a
// regular file, or a pipe that is also another standard stream keep the
// plain reads and writes, untouched. restore leaves them blocking again.
func TestStdStreamsOnlyForOwnPipes(t *testing.T) {
	stdin, _ := blockingPipe(t)
	_, stdout := blockingPipe(t)
	in, out, restore := stdStreams(IO{In: stdin, Out: stdout, ErrOut: os.Stderr}, true)
	if _, ok := in.(*stdpipe.File); !ok {
		t.Errorf("stdin, a pipe of its own: %T, want *stdpipe.File", in)
	}
	if _, ok := out.(*stdpipe.File); !ok {
		t.Errorf("stdout, a pipe of its own: %T, want *stdpipe.File", out)
	}
	restore()
	if isNonblocking(stdin) || isNonblocking(stdout) {
		t.Fatal("a pipe stayed non-blocking after the bridge")
	}
	_, out, restore = stdStreams(IO{In: stdin, Out: stdout, ErrOut: os.Stderr}, false)
	restore()
	if out != any(stdout) {
		t.Errorf("stdout on the direct path: %T, want the plain file", out)
	}

	ptm, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptm.Close()
	defer tty.Close()
	reg, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	for name, std := range map[string]IO{
		"terminal":              {In: tty, Out: tty, ErrOut: tty},
		"regular files":         {In: reg, Out: reg, ErrOut: os.Stderr},
		"one pipe for both":     {In: stdout, Out: stdout, ErrOut: os.Stderr},
		"stdout that is stderr": {In: tty, Out: stdout, ErrOut: stdout},
	} {
		in, out, restore := stdStreams(std, true)
		if in != std.In || out != std.Out {
			t.Errorf("%s: %T, %T; want the plain files", name, in, out)
		}
		if isNonblocking(stdout) {
			t.Errorf("%s: made the pipe non-blocking", name)
		}
		restore()
	}
}
