//go:build unix

package rawio

import (
	"io"
	"os"
	"syscall"
)

// Supported reports whether Read, Write and TryWrite work on this platform.
const Supported = true

// Conn is a descriptor's RawConn with the state of one read and one write,
// so that its methods allocate nothing per call (Read, Write and TryWrite
// below build a closure and its captured results each time: three
// allocations per call, a dozen per message at the agent's pace). One Read
// at a time, and one Write or TryWrite at a time; a Read may run beside a
// write.
type Conn struct {
	rc syscall.RawConn
	r  op
	w  op
}

// op is one read or write: its buffer, its result, and the callback given
// to the RawConn (a method value bound once).
type op struct {
	p    []byte
	n    int
	err  error // the system call's
	wait bool  // wait through the poller while the descriptor is full (write) or empty (read)
	fn   func(fd uintptr) bool
}

// NewConn returns a Conn for rc.
func NewConn(rc syscall.RawConn) *Conn {
	c := &Conn{rc: rc}
	c.r.fn = c.r.read
	c.w.fn = c.w.write
	return c
}

// Read reads into p from the descriptor, waiting through the network
// poller (and the descriptor's read deadline) while nothing is there. It
// returns io.EOF at the end of the stream; a system call's error is an
// *os.SyscallError, the poller's (deadline, closed) is RawConn.Read's.
func (c *Conn) Read(p []byte) (int, error) { return c.read(p, true) }

// TryRead reads into p what the descriptor holds, without waiting: n is 0
// and err nil when nothing is there (io.EOF at the end of the stream). A
// Read after it still sees what arrives later: the poller's readiness is
// reset before every read attempt, never after.
func (c *Conn) TryRead(p []byte) (int, error) { return c.read(p, false) }

func (c *Conn) read(p []byte, wait bool) (int, error) {
	o := &c.r
	o.p, o.n, o.err, o.wait = p, 0, nil, wait
	err := c.rc.Read(o.fn)
	n, serr := o.n, o.err
	o.p, o.err = nil, nil
	switch {
	case err != nil:
		return 0, err
	case serr == syscall.EAGAIN:
		return 0, nil // TryRead: nothing there
	case serr != nil:
		return 0, os.NewSyscallError("read", serr)
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
}

func (o *op) read(fd uintptr) bool {
	for {
		n, err := sysRead(int(fd), o.p)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			if !o.wait {
				o.err = err
				return true
			}
			return false // the poller waits
		}
		o.n, o.err = n, err
		return true
	}
}

// Write writes all of p to the descriptor, waiting through the network
// poller (and the descriptor's write deadline) while it takes nothing. n
// is how much was written before an error.
func (c *Conn) Write(p []byte) (int, error) { return c.write(p, true) }

// TryWrite writes as much of p to the descriptor as it takes without
// waiting: n is 0 when its buffer is full. It never waits for the
// descriptor (only, briefly, for another goroutine's Write on it to end).
func (c *Conn) TryWrite(p []byte) (int, error) { return c.write(p, false) }

func (c *Conn) write(p []byte, wait bool) (int, error) {
	o := &c.w
	o.p, o.n, o.err, o.wait = p, 0, nil, wait
	err := c.rc.Write(o.fn)
	n, serr := o.n, o.err
	o.p, o.err = nil, nil
	if err == nil && serr != nil {
		err = os.NewSyscallError("write", serr)
	}
	return n, err
}

func (o *op) write(fd uintptr) bool {
	for o.n < len(o.p) {
		m, err := sysWrite(int(fd), o.p[o.n:])
		switch err {
		case nil:
			o.n += m
		case syscall.EINTR:
		case syscall.EAGAIN:
			return !o.wait // false: the poller waits
		default:
			o.err = err
			return true
		}
	}
	return true
}

// Read reads into p from the descriptor of rc, as Conn.Read (allocating a
// Conn: for a descriptor read many times, keep one).
func Read(rc syscall.RawConn, p []byte) (int, error) { return NewConn(rc).Read(p) }

// Write writes all of p to the descriptor of rc, as Conn.Write.
func Write(rc syscall.RawConn, p []byte) (int, error) { return NewConn(rc).Write(p) }

// TryWrite writes what the descriptor of rc takes of p without waiting, as Conn.TryWrite.
func TryWrite(rc syscall.RawConn, p []byte) (int, error) { return NewConn(rc).TryWrite(p) }
