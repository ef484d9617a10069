//go:build unix

package stdpipe

import (
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/devgate/devgate/internal/rawio"
)

// File reads or writes a pipe or socket made non-blocking. One goroutine
// at a time may read, and one at a time may write (TryWrite and Write from
// different goroutines, not at once).
type File struct {
	f       *os.File // a duplicate of the descriptor, in the runtime's poller
	rc      *rawio.Conn
	orig    *os.File // the file given to Open
	restore bool     // the open file was blocking: Close makes it so again
}

// Open returns a File for f when f is a pipe or a socket and is not the
// same file as any of others (nil entries are skipped; both ends of one
// pipe count as the same file); otherwise ErrNotPipe or ErrShared, and f
// is untouched. It sets O_NONBLOCK on f's open file (f itself must then not
// be read or written with blocking calls until Close) and works on a
// duplicate of f's descriptor, so that closing the File never closes f.
func Open(f *os.File, others ...*os.File) (*File, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Mode()&(os.ModeNamedPipe|os.ModeSocket) == 0 {
		return nil, ErrNotPipe
	}
	for _, o := range others {
		if o == nil {
			continue
		}
		if oi, err := o.Stat(); err == nil && os.SameFile(fi, oi) {
			return nil, ErrShared
		}
	}
	sc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	dup, wasBlocking := -1, false
	var derr error
	if err := sc.Control(func(fd uintptr) {
		dup, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
		if derr != nil {
			return
		}
		var flags int
		if flags, derr = unix.FcntlInt(uintptr(dup), unix.F_GETFL, 0); derr != nil {
			return
		}
		wasBlocking = flags&unix.O_NONBLOCK == 0
		derr = unix.SetNonblock(dup, true)
	}); err != nil {
		return nil, err
	}
	if derr != nil {
		if dup >= 0 {
			unix.Close(dup)
		}
		return nil, derr
	}
	nf := os.NewFile(uintptr(dup), f.Name()) // non-blocking: in the poller
	rc, err := nf.SyscallConn()
	if err != nil {
		nf.Close()
		return nil, err
	}
	return &File{f: nf, rc: rawio.NewConn(rc), orig: f, restore: wasBlocking}, nil
}

// Read reads into p, waiting in the poller while the pipe is empty; io.EOF
// at its end.
func (w *File) Read(p []byte) (int, error) {
	n, err := w.rc.Read(p)
	if err == io.EOF {
		return n, err
	}
	return n, w.pathErr("read", err)
}

// TryWrite writes as much of p as the pipe takes at once (0 when it is
// full) and never waits.
func (w *File) TryWrite(p []byte) (int, error) {
	n, err := w.rc.TryWrite(p)
	return n, w.pathErr("write", err)
}

// Write writes all of p, waiting while the pipe is full.
func (w *File) Write(p []byte) (int, error) {
	n, err := w.rc.Write(p)
	return n, w.pathErr("write", err)
}

// Close closes the duplicate descriptor (never the original; a Read or
// Write that waits returns an error, and none is under way once Close
// returns), then makes the open file blocking again if it was.
func (w *File) Close() error {
	err := w.f.Close()
	if w.restore {
		if sc, e := w.orig.SyscallConn(); e == nil {
			_ = sc.Control(func(fd uintptr) { _ = unix.SetNonblock(int(fd), false) })
		}
	}
	return err
}

// pathErr wraps err as os.File's methods do (an EPIPE stays errors.Is
// syscall.EPIPE).
func (w *File) pathErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return err
	}
	return &os.PathError{Op: op, Path: w.f.Name(), Err: err}
}
