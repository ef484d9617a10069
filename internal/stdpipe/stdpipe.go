// Package stdpipe opens a process's standard input or output, when it is a
// pipe or a socket (as ssh gives its ProxyCommand), for reads and writes
// through the runtime's network poller instead of a thread blocked in
// read(2) or write(2): File.Read and File.Write wait in the poller,
// File.TryWrite writes what fits at once and never waits, and all of them
// use rawio's system calls (no wake-up of the runtime's sysmon thread per
// call, and no goroutine parked in a system call, which keeps sysmon polling
// and retaking its P). internal/datachannel's Session.WriteTo uses TryWrite
// to write the agent's output from the socket's reader goroutine.
//
// It does not change a terminal, a regular file or anything else (Open
// fails with ErrNotPipe: the caller keeps its plain reads and writes), nor a
// pipe that is also another of the process's standard streams (ErrShared):
// the descriptor's O_NONBLOCK flag belongs to the open file, and the others
// are read and written with blocking calls. File.Close restores the flag.
// Unix only; elsewhere Open always fails with ErrNotPipe.
package stdpipe

import "errors"

// ErrNotPipe: the file is not a pipe or a socket (or the platform has no
// non-blocking descriptors): use it as before.
var ErrNotPipe = errors.New("stdpipe: not a pipe or socket")

// ErrShared: the file is the same pipe as one the caller reads or writes
// with blocking calls (another standard stream): use it as before.
var ErrShared = errors.New("stdpipe: the pipe is shared with another standard stream")
