package rawio

import (
	"syscall"
	"time"
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

// Pause sleeps d on the calling thread without telling the scheduler
// (nanosleep(2) through RawSyscall): the goroutine keeps its thread and its
// P, so nothing else of the process runs on that P meanwhile, and no thread
// waits in the network poller (epoll) to be woken by what arrives. Only for
// a process whose other goroutines can wait d (devgate connect on one P,
// datachannel.Config.Coalesce); d is capped at 10 ms, below the runtime's
// preemption of a running goroutine.
func Pause(d time.Duration) {
	d = min(d, 10*time.Millisecond)
	if d <= 0 {
		return
	}
	ts := syscall.NsecToTimespec(int64(d))
	for {
		// A signal (the runtime's preemption, SIGURG) ends the sleep early
		// with EINTR and what was left in ts: sleep the rest.
		_, _, e := syscall.RawSyscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), uintptr(unsafe.Pointer(&ts)), 0)
		if e != syscall.EINTR {
			return
		}
	}
}
