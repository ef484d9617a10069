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

// Pause sleeps at least d, and at most about 10 ms however long d is (a
// longer hold of the thread would meet the runtime's preemption).
func TestPauseSleepsCapped(t *testing.T) {
	start := time.Now()
	rawio.Pause(2 * time.Millisecond)
	if d := time.Since(start); d < 2*time.Millisecond {
		t.Fatalf("Pause(2ms) returned after %s", d)
	}
	start = time.Now()
	rawio.Pause(time.Hour)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Pause(1h) held the thread %s: not capped", d)
	}
	rawio.Pause(0)
	rawio.Pause(-time.Second)
}

// TryRead takes what is there without waiting: nothing is (0, nil), data
// is returned, and a Read after an empty TryRead still wakes for data that
// arrives later (the poller's readiness is reset before each attempt, so
// no notification is lost between the two); the end of the stream is
// io.EOF.
func TestTryRead(t *testing.T) {
	c, s := tcpPair(t)
	rc := rawio.NewConn(rawConn(t, c))
	buf := make([]byte, 64)
	if n, err := rc.TryRead(buf); n != 0 || err != nil {
		t.Fatalf("TryRead of an empty socket: %d, %v; want 0, nil", n, err)
	}
	if _, err := s.Write([]byte("ab")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(testutil.Deadline(5 * time.Second))
	var got []byte
	for len(got) < 2 && time.Now().Before(deadline) {
		n, err := rc.TryRead(buf)
		if err != nil {
			t.Fatalf("TryRead: %v", err)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != "ab" {
		t.Fatalf("TryRead returned %q, want \"ab\"", got)
	}
	if n, err := rc.TryRead(buf); n != 0 || err != nil {
		t.Fatalf("TryRead after the data: %d, %v; want 0, nil", n, err)
	}
	read := make(chan string, 1)
	go func() {
		n, err := rc.Read(buf)
		if err != nil {
			read <- err.Error()
			return
		}
		read <- string(buf[:n])
	}()
	time.Sleep(20 * time.Millisecond)
	if _, err := s.Write([]byte("c")); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-read:
		if r != "c" {
			t.Fatalf("Read after an empty TryRead: %q, want \"c\"", r)
		}
	case <-time.After(testutil.Deadline(5 * time.Second)):
		t.Fatal("Read after an empty TryRead missed data that arrived later")
	}
	s.Close()
	for {
		n, err := rc.TryRead(buf)
		if err == io.EOF {
			break
		}
		if err != nil || n != 0 || time.Now().After(deadline) {
			t.Fatalf("TryRead after the peer closed: %d, %v; want io.EOF", n, err)
		}
	}
}
