//go:build unix

package stdpipe_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/devgate/devgate/internal/stdpipe"
	"github.com/devgate/devgate/internal/testutil"
)

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// A full pipe: TryWrite takes what fits and then 0 without waiting; Write
// waits (backpressure) until the reader reads, and the reader gets every
// byte once, in order.
func TestFullPipeBackpressureLosesNothing(t *testing.T) {
	r, w := testutil.BlockingPipe(t)
	sw, err := stdpipe.Open(w)
	if err != nil {
		t.Fatalf("Open of a pipe: %v", err)
	}
	defer sw.Close()
	data := pattern(1 << 20)
	n, err := sw.TryWrite(data)
	if err != nil || n == 0 || n == len(data) {
		t.Fatalf("TryWrite of 1 MiB to an empty pipe: %d, %v; want what fits", n, err)
	}
	if m, err := sw.TryWrite(data[n:]); m != 0 || err != nil {
		t.Fatalf("TryWrite to a full pipe: %d, %v; want 0 at once", m, err)
	}
	done := make(chan error, 1)
	go func() {
		m, err := sw.Write(data[n:])
		if err == nil && m != len(data)-n {
			err = io.ErrShortWrite
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Write to a full pipe returned (%v) before anything was read", err)
	case <-time.After(100 * time.Millisecond):
	}
	got := make([]byte, len(data))
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Write: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the reader got other bytes than were written")
	}
}

// Open makes the open file non-blocking and Close makes it blocking again;
// the original descriptor stays open and usable.
func TestCloseRestoresBlockingAndKeepsTheFile(t *testing.T) {
	r, w := testutil.BlockingPipe(t)
	sw, err := stdpipe.Open(w)
	if err != nil {
		t.Fatal(err)
	}
	if !testutil.Nonblocking(t, w) {
		t.Fatal("Open did not make the pipe non-blocking")
	}
	if _, err := sw.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	if testutil.Nonblocking(t, w) {
		t.Fatal("Close left the pipe non-blocking")
	}
	if _, err := w.Write([]byte("b")); err != nil {
		t.Fatalf("the original file after Close: %v", err)
	}
	got := make([]byte, 2)
	if _, err := io.ReadFull(r, got); err != nil || string(got) != "ab" {
		t.Fatalf("read %q, %v; want ab", got, err)
	}
}

// Close ends a Write that waits for room in a pipe nobody reads.
func TestCloseEndsWaitingWrite(t *testing.T) {
	_, w := testutil.BlockingPipe(t)
	sw, err := stdpipe.Open(w)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := sw.Write(make([]byte, 4<<20)); done <- err }()
	time.Sleep(50 * time.Millisecond)
	sw.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Write to a closed File succeeded")
		}
	case <-time.After(testutil.Deadline(10 * time.Second)):
		t.Fatal("Close did not end the waiting Write")
	}
}

// A terminal, a regular file and /dev/null are written as before (ErrNotPipe);
// a pipe that is also stdin or stderr as well (ErrShared); a socket is taken.
func TestOpenOnlyOwnPipesAndSockets(t *testing.T) {
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
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	for name, f := range map[string]*os.File{"tty": tty, "regular file": reg, "/dev/null": null} {
		if sw, err := stdpipe.Open(f); !errors.Is(err, stdpipe.ErrNotPipe) {
			if sw != nil {
				sw.Close()
			}
			t.Errorf("Open(%s): %v, want ErrNotPipe", name, err)
		}
		if testutil.Nonblocking(t, f) {
			t.Errorf("Open(%s) made it non-blocking", name)
		}
	}

	_, w := testutil.BlockingPipe(t)
	fd, err := unix.Dup(int(w.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	same := os.NewFile(uintptr(fd), "same pipe")
	defer same.Close()
	if _, err := stdpipe.Open(w, nil, same); !errors.Is(err, stdpipe.ErrShared) {
		t.Errorf("Open of a pipe that is also stderr: %v, want ErrShared", err)
	}
	if testutil.Nonblocking(t, w) {
		t.Error("Open of a shared pipe made it non-blocking")
	}

	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := os.NewFile(uintptr(sp[0]), "sock-a"), os.NewFile(uintptr(sp[1]), "sock-b")
	defer a.Close()
	defer b.Close()
	sw, err := stdpipe.Open(a)
	if err != nil {
		t.Fatalf("Open of a socket: %v", err)
	}
	defer sw.Close()
	if _, err := sw.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	one := make([]byte, 1)
	if _, err := io.ReadFull(b, one); err != nil || one[0] != 'x' {
		t.Fatalf("socket read %q, %v", one, err)
	}
}

// Read of stdin as a pipe: it waits (in the poller) for the writer, gets its
// bytes, then io.EOF when the writer closes; Close ends a waiting Read.
func TestReadWaitsThenEOFAndCloseEndsIt(t *testing.T) {
	r, w := testutil.BlockingPipe(t)
	sr, err := stdpipe.Open(r)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		w.Write([]byte("keys"))
		w.Close()
	}()
	got, err := io.ReadAll(sr)
	if err != nil || string(got) != "keys" {
		t.Fatalf("ReadAll: %q, %v; want keys, then EOF", got, err)
	}
	sr.Close()
	if testutil.Nonblocking(t, r) {
		t.Fatal("Close left stdin non-blocking")
	}

	r2, _ := testutil.BlockingPipe(t)
	sr2, err := stdpipe.Open(r2)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := sr2.Read(make([]byte, 8)); done <- err }()
	time.Sleep(50 * time.Millisecond)
	sr2.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Read of a closed File succeeded")
		}
	case <-time.After(testutil.Deadline(10 * time.Second)):
		t.Fatal("Close did not end the waiting Read")
	}
}
