//go:build unix && !linux

package rawio

import (
	"syscall"
	"time"
)

// sysRead is read(2); elsewhere than Linux the ordinary system call.
func sysRead(fd int, p []byte) (int, error) {
	n, err := syscall.Read(fd, p)
	if err != nil {
		return 0, err
	}
	return n, nil
}

// sysWrite is write(2); elsewhere than Linux the ordinary system call.
func sysWrite(fd int, p []byte) (int, error) {
	n, err := syscall.Write(fd, p)
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Pause sleeps d (at most 10 ms); elsewhere than Linux it is time.Sleep.
func Pause(d time.Duration) {
	if d > 0 {
		time.Sleep(min(d, 10*time.Millisecond))
	}
}
