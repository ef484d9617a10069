//go:build unix

package datachannel

import (
	"errors"
	"net"
	"syscall"
)

// tryWrite writes as much of b to c as the socket takes without waiting:
// n bytes (0 when its buffer is full). attempted is false when c is not a
// socket it can write to that way (the caller then leaves b to a blocking write).
func tryWrite(c net.Conn, b []byte) (n int, attempted bool, err error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, false, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, false, nil
	}
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		for n < len(b) {
			m, e := syscall.Write(int(fd), b[n:])
			if e == syscall.EINTR {
				continue
			}
			if m > 0 {
				n += m
			}
			if e != nil {
				if !errors.Is(e, syscall.EAGAIN) {
					werr = e
				}
				break
			}
		}
		return true // never wait: what is left goes to the blocking writer
	})
	if err == nil {
		err = werr
	}
	return n, true, err
}
