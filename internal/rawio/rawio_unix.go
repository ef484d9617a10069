//go:build unix

package rawio

import (
	"io"
	"os"
	"syscall"
)

// Supported reports whether Read, Write and TryWrite work on this platform.
const Supported = true

// Read reads into p from the descriptor of rc, waiting through the
// network poller (and rc's read deadline) while nothing is there. It
// returns io.EOF at the end of the stream; a system call's error is an
// *os.SyscallError, the poller's (deadline, closed) is RawConn.Read's.
func Read(rc syscall.RawConn, p []byte) (int, error) {
	var n int
	var serr error
	err := rc.Read(func(fd uintptr) bool {
		for {
			n, serr = sysRead(int(fd), p)
			switch serr {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // the poller waits
			}
			return true
		}
	})
	switch {
	case err != nil:
		return 0, err
	case serr != nil:
		return 0, os.NewSyscallError("read", serr)
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write writes all of p to the descriptor of rc, waiting through the
// network poller (and rc's write deadline) while it takes nothing. n is
// how much was written before an error.
func Write(rc syscall.RawConn, p []byte) (int, error) { return write(rc, p, true) }

// TryWrite writes as much of p to the descriptor of rc as it takes
// without waiting: n is 0 when its buffer is full. It never waits for the
// descriptor (only, briefly, for another goroutine's Write on rc to end).
func TryWrite(rc syscall.RawConn, p []byte) (int, error) { return write(rc, p, false) }

// write is Write (wait) and TryWrite (not wait: a full buffer ends it).
func write(rc syscall.RawConn, p []byte, wait bool) (int, error) {
	n, serr := 0, error(nil)
	err := rc.Write(func(fd uintptr) bool {
		for n < len(p) {
			m, e := sysWrite(int(fd), p[n:])
			switch e {
			case nil:
				n += m
			case syscall.EINTR:
			case syscall.EAGAIN:
				return !wait // false: the poller waits
			default:
				serr = e
				return true
			}
		}
		return true
	})
	if err == nil && serr != nil {
		err = os.NewSyscallError("write", serr)
	}
	return n, err
}
