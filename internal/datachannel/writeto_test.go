//go:build linux

package datachannel_test

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/devgate/devgate/internal/datachannel"
	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labtest"
	"github.com/devgate/devgate/internal/stdpipe"
	"github.com/devgate/devgate/internal/testutil"
)

// countingTryWriter is stdpipe's File counting TryWrite's calls and short results.
type countingTryWriter struct {
	*stdpipe.File
	calls, zero, partial atomic.Int64
}

func (c *countingTryWriter) TryWrite(p []byte) (int, error) {
	c.calls.Add(1)
	n, err := c.File.TryWrite(p)
	switch {
	case n == 0:
		c.zero.Add(1)
	case n < len(p):
		c.partial.Add(1)
	}
	return n, err
}

// sender is a target port that sends data and closes (the agent then ends
// the session with channel_closed).
func sender(data []byte) func(net.Conn) { return func(c net.Conn) { _, _ = c.Write(data) } }

// WriteTo into a pipe (as ssh gives devgate connect's stdout): the reader
// writes output itself while the pipe takes it; when it is full (EAGAIN,
// partial writes) the rest is buffered up to ReadBuffer and the reader stops
// reading the socket; once the pipe is read, every byte arrives once, in
// order, and WriteTo ends with the session.
func TestWriteToFullPipeKeepsOrderAndBackpressure(t *testing.T) {
	l := labtest.Start(t, lab.Options{})
	data := make([]byte, 1<<20)
	rand.Read(data)
	port := labtest.Serve(t, sender(data))
	const readBuffer = 64 << 10
	s := open(t, l, port, func(c *datachannel.Config) { c.ReadBuffer = readBuffer })
	defer s.Close()

	r, w := testutil.BlockingPipe(t)
	pipeSize, err := unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, 4096)
	if err != nil {
		t.Fatal(err)
	}
	sw, err := stdpipe.Open(w)
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	cw := &countingTryWriter{File: sw}
	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() { n, err := s.WriteTo(cw); done <- result{n, err} }()

	// Nobody reads the pipe: the session stops taking messages once the pipe
	// and ReadBuffer are full.
	deadline := time.Now().Add(testutil.Deadline(20 * time.Second))
	last := int64(-1)
	for {
		time.Sleep(200 * time.Millisecond)
		got := s.Stats().Received
		if got == last {
			break
		}
		last = got
		if time.Now().After(deadline) {
			t.Fatalf("the session kept receiving (%d messages) while nobody read its output", got)
		}
	}
	// The data is at least len/1024 messages (1 KiB payloads at most); the
	// pipe and ReadBuffer hold a small part of it.
	if all := int64(len(data) / 1024); last > all/4 {
		t.Fatalf("received %d messages while the pipe (%d bytes) was not read, of the %d or more the data takes: no backpressure", last, pipeSize, all)
	}

	got := make([]byte, len(data))
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-done:
		if res.err != nil || res.n != int64(len(data)) {
			t.Fatalf("WriteTo: %d bytes, %v; want %d, nil (channel_closed)", res.n, res.err, len(data))
		}
	case <-time.After(testutil.Deadline(20 * time.Second)):
		t.Fatal("WriteTo did not end after channel_closed")
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the pipe's bytes differ from what the target sent (order or loss)")
	}
	if cw.zero.Load()+cw.partial.Load() == 0 {
		t.Fatal("the full pipe never made TryWrite short: the test did not exercise EAGAIN or partial writes")
	}
	sw.Close()
	w.Close()
	if extra, _ := io.ReadAll(r); len(extra) != 0 {
		t.Fatal("more bytes than were sent")
	}
}

// A destination that cannot write without waiting (a regular file, as a
// redirected stdout) is written by WriteTo's own goroutine: same bytes.
func TestWriteToPlainFile(t *testing.T) {
	l := labtest.Start(t, lab.Options{})
	data := make([]byte, 256<<10)
	rand.Read(data)
	port := labtest.Serve(t, sender(data))
	s := open(t, l, port, nil)
	defer s.Close()
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok := any(f).(datachannel.TryWriter); ok {
		t.Fatal("*os.File is a TryWriter: the plain path is not what this tests")
	}
	n, err := s.WriteTo(f)
	if err != nil || n != int64(len(data)) {
		t.Fatalf("WriteTo a file: %d, %v", n, err)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the file holds %d bytes (%v), differing from the %d sent", len(got), err, len(data))
	}
}
