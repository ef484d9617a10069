// Package rawio reads and writes a non-blocking socket or pipe through its
// syscall.RawConn with system calls that do not go through the Go
// scheduler's system-call bookkeeping (runtime.entersyscall), where the
// platform allows it (Linux).
//
// Why: every system call the standard library makes (net.Conn.Read,
// os.File.Write) enters the scheduler's syscall path, and when all of the
// process's Ps were idle — a process that waits for one small message at a
// time, like `devgate connect` at the agent's pace — that path wakes the
// runtime's sysmon thread (runtime/proc.go, reentersyscall →
// entersyscallWakeSysmon), which then sleeps and wakes a few times before it
// sleeps deeply again: several context switches per message. A read or
// write on a non-blocking descriptor never blocks, so it needs none of that
// bookkeeping; waiting (EAGAIN) is left to the runtime's network poller
// through RawConn, so deadlines and Close keep working as for net.Conn.
//
// It does not make a descriptor non-blocking (the caller does, or net.Conn
// already is), and it is no faster for large transfers: it saves wake-ups,
// not copies. Elsewhere (other Unix systems) the same functions use the
// ordinary syscall.Read and syscall.Write; on systems without Unix file
// descriptors Supported is false and every function fails with
// errors.ErrUnsupported.
package rawio
