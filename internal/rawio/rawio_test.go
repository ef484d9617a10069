//go:build unix

package rawio_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/rawio"
	"github.com/devgate/devgate/internal/testutil"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() { c, _ := ln.Accept(); acc <- c }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-acc
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

func rawConn(t *testing.T, c syscall.Conn) syscall.RawConn {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// A read deadline fires while Read waits in the poller, as net.Conn's does;
// after it is cleared, Read returns what arrives, then io.EOF.
func TestReadDeadlineDataAndEOF(t *testing.T) {
	c, s := tcpPair(t)
	rc := rawConn(t, c)
	buf := make([]byte, 64)
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := rawio.Read(rc, buf)
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read past its deadline: %v, want a timeout (os.ErrDeadlineExceeded)", err)
	}
	c.SetReadDeadline(time.Time{})
	go func() { s.Write([]byte("hello")); s.Close() }()
	var got []byte
	for {
		n, err := rawio.Read(rc, buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
	}
	if string(got) != "hello" {
		t.Fatalf("read %q, want hello", got)
	}
}

// Write waits for room while the peer does not read and fails at its
// deadline; what it reports written is exactly what the peer then receives.
func TestWriteDeadlineWhilePeerDoesNotRead(t *testing.T) {
	c, s := tcpPair(t)
	rc := rawConn(t, c)
	data := bytes.Repeat([]byte("0123456789abcdef"), 4<<20) // 64 MiB: more than the socket buffers
	c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	n, err := rawio.Write(rc, data)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write to a peer that does not read: %d bytes, %v; want a deadline error", n, err)
	}
	if n == 0 || n >= len(data) {
		t.Fatalf("Write wrote %d of %d bytes before its deadline", n, len(data))
	}
	c.Close()
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data[:n]) {
		t.Fatalf("the peer received %d bytes, Write reported %d (or they differ)", len(got), n)
	}
}

// TryWrite never waits: on a full pipe it returns 0 at once, and the bytes
// it reports are the ones the reader gets, in order.
func TestTryWriteFullPipe(t *testing.T) {
	r, w, err := os.Pipe() // non-blocking, in the poller
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	rc := rawConn(t, w)
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i % 251)
	}
	n, err := rawio.TryWrite(rc, data)
	if err != nil || n == 0 || n == len(data) {
		t.Fatalf("TryWrite of 1 MiB to an empty pipe: %d, %v; want a partial write", n, err)
	}
	if m, err := rawio.TryWrite(rc, data[n:]); m != 0 || err != nil {
		t.Fatalf("TryWrite to a full pipe: %d, %v; want 0, nil", m, err)
	}
	got := make([]byte, n)
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data[:n]) {
		t.Fatal("the pipe gave other bytes than TryWrite wrote")
	}
}

// A Conn's reads and writes allocate nothing (the free functions allocate
// their callback each call: a dozen allocations per message at the agent's
// pace, BENCHMARKS.md "Garbage and system-call wrappers per message").
func TestConnDoesNotAllocate(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	rc, wc := rawio.NewConn(rawConn(t, r)), rawio.NewConn(rawConn(t, w))
	msg, buf := []byte("one message"), make([]byte, 64)
	if n := testing.AllocsPerRun(200, func() {
		if n, err := wc.TryWrite(msg); n != len(msg) || err != nil {
			t.Fatalf("TryWrite: %d, %v", n, err)
		}
		if n, err := wc.Write(msg); n != len(msg) || err != nil {
			t.Fatalf("Write: %d, %v", n, err)
		}
		if n, err := rc.Read(buf); n != 2*len(msg) || err != nil {
			t.Fatalf("Read: %d, %v", n, err)
		}
	}); n > 0 && !testutil.Race { // the race detector's instrumentation allocates
		t.Fatalf("%.1f allocations per TryWrite, Write and Read, want 0", n)
	}
}
