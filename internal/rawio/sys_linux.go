package rawio

import (
	"syscall"
	"unsafe"
)

// sysRead is read(2) without runtime.entersyscall: only for a descriptor
// that cannot block (O_NONBLOCK).
func sysRead(fd int, p []byte) (int, error) { return rawRW(syscall.SYS_READ, fd, p) }

// sysWrite is write(2) without runtime.entersyscall: only for a descriptor
// that cannot block (O_NONBLOCK).
func sysWrite(fd int, p []byte) (int, error) { return rawRW(syscall.SYS_WRITE, fd, p) }

func rawRW(trap uintptr, fd int, p []byte) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	r, _, e := syscall.RawSyscall(trap, uintptr(fd), uintptr(ptr), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}
