//go:build unix

package cli

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/creack/pty"

	"github.com/devgate/devgate/internal/stdpipe"
	"github.com/devgate/devgate/internal/testutil"
)

// connect's stdin and stdout go through stdpipe (no thread blocked in a
// system call; the data channel's reader writes output without waiting)
// only when they are pipes or sockets of their own, as ssh gives its
// ProxyCommand, and stdout only on the Session Manager path; a terminal, a
// regular file, or a pipe that is also another standard stream keep the
// plain reads and writes, untouched. restore leaves them blocking again.
func TestStdStreamsOnlyForOwnPipes(t *testing.T) {
	stdin, _ := testutil.BlockingPipe(t)
	_, stdout := testutil.BlockingPipe(t)
	in, out, restore := stdStreams(IO{In: stdin, Out: stdout, ErrOut: os.Stderr}, true)
	if _, ok := in.(*stdpipe.File); !ok {
		t.Errorf("stdin, a pipe of its own: %T, want *stdpipe.File", in)
	}
	if _, ok := out.(*stdpipe.File); !ok {
		t.Errorf("stdout, a pipe of its own: %T, want *stdpipe.File", out)
	}
	restore()
	if testutil.Nonblocking(t, stdin) || testutil.Nonblocking(t, stdout) {
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
		if testutil.Nonblocking(t, stdout) {
			t.Errorf("%s: made the pipe non-blocking", name)
		}
		restore()
	}
}
