package datachannel

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/devgate/devgate/internal/rawio"
)

// batchConn is the network connection under the WebSocket (and under TLS for
// wss): it lets the socket's writer put several frames on the wire with one
// write system call, keeps every other goroutine from blocking on a full
// socket, and tells the socket's reader when it is about to wait for the
// network.
//
// Until start (the WebSocket handshake) it is a plain connection. After it,
// writes go to a buffer. Inside a batch (Hold … Release/tryRelease) they wait
// for its end; outside one the writing goroutine tries to put them on the
// socket without waiting, and what the socket does not take at once is left
// to the WebSocket's writer goroutine (kick, then Flush): only that goroutine
// ever waits for the network, with its own deadline (flushTimeout; the
// deadlines gorilla sets per write are ignored, since the write gorilla
// timed is not the one that waits). Bytes reach the socket in the order they
// were written, whichever goroutine writes them (TLS records must not be
// reordered). Reads pass through, after calling beforeRead: the reader has
// processed every frame already received and is about to wait for more,
// which is when what it queued (acks, Read's wake-up) is handed on.
//
// Where the connection is a socket and rawio is supported, its reads, and
// its writes after start, go through rawio (its RawConn, system calls that do not wake
// the runtime's sysmon thread): at the agent's pace every message is one
// read, and each would otherwise cost a handful of context switches
// (rawio's doc). Deadlines still apply (the poller waits).
type batchConn struct {
	net.Conn
	raw *rawio.Conn // nil: the connection's own Read and Write
	// beforeRead is called by Read before it reads the network (the
	// WebSocket's reader goroutine only); nil: nothing. A non-zero time
	// bounds the read's wait: when it passes with nothing read, beforeRead
	// is called again. With sleep, Read waits it out asleep on its thread
	// (rawio.Pause) and then takes what arrived without waiting, instead
	// of waiting in the poller (Config.HoldThread).
	beforeRead func() (until time.Time, sleep bool)
	// emptyHolds, if set, counts the holds that ended with nothing read
	// (Session.HoldStats).
	emptyHolds *atomic.Int64

	mu       sync.Mutex
	kick     func() // asks the writer goroutine to Flush; nil until start
	buf      []byte // written, not yet handed to the network
	spare    []byte // the other buffer, reused
	held     int    // open batches
	flushing bool   // a goroutine is writing to the network
	err      error  // the first write error: every later write fails with it
}

// maxBatchBuffer is how much of a flushed buffer is kept for reuse.
const maxBatchBuffer = 256 << 10

// flushTimeout bounds the writer goroutine's wait for the network: a
// socket that takes nothing for this long is broken.
const flushTimeout = time.Minute

func newBatchConn(c net.Conn) *batchConn {
	bc := &batchConn{Conn: c}
	if sc, ok := c.(syscall.Conn); ok && rawio.Supported {
		if rc, err := sc.SyscallConn(); err == nil {
			bc.raw = rawio.NewConn(rc)
		}
	}
	return bc
}

// opError wraps an error of rawio as net.Conn's methods do.
func (c *batchConn) opError(op string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(*net.OpError); ok {
		return err
	}
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// start switches from a plain connection to batching; kick asks the writer
// goroutine for a Flush.
func (c *batchConn) start(kick func()) {
	c.mu.Lock()
	c.kick = kick
	c.mu.Unlock()
}

func (c *batchConn) Read(p []byte) (int, error) {
	for c.beforeRead != nil {
		until, sleep := c.beforeRead()
		if until.IsZero() {
			break
		}
		if sleep && c.raw != nil {
			rawio.Pause(time.Until(until))
			n, err := c.raw.TryRead(p)
			if n > 0 || err != nil {
				if err != nil && err != io.EOF {
					err = c.opError("read", err)
				}
				return n, err
			}
			c.countEmptyHold()
			continue // nothing came: the hold is over, beforeRead writes what it held
		}
		_ = c.Conn.SetReadDeadline(until)
		n, err := c.read(p)
		_ = c.Conn.SetReadDeadline(time.Time{})
		if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
			c.countEmptyHold()
			continue // the hold is over: beforeRead writes what it held
		}
		return n, err
	}
	return c.read(p)
}

func (c *batchConn) countEmptyHold() {
	if c.emptyHolds != nil {
		c.emptyHolds.Add(1)
	}
}

// read reads the network once.
func (c *batchConn) read(p []byte) (int, error) {
	if c.raw != nil {
		n, err := c.raw.Read(p)
		if err != nil && err != io.EOF {
			err = c.opError("read", err)
		}
		return n, err
	}
	return c.Conn.Read(p)
}

// SetWriteDeadline applies before start (the handshake); after it the
// writer's own flushTimeout applies.
func (c *batchConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	started := c.kick != nil
	c.mu.Unlock()
	if started {
		return nil
	}
	return c.Conn.SetWriteDeadline(t)
}

// Write queues p; outside a batch it then tries to write it without waiting.
func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.kick == nil {
		c.mu.Unlock()
		return c.Conn.Write(p)
	}
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return 0, err
	}
	c.buf = append(c.buf, p...)
	later := c.held > 0 || c.flushing // the batch's end, or the write under way, takes it
	c.mu.Unlock()
	if later {
		return len(p), nil
	}
	_, err := c.tryFlush()
	return len(p), err
}

// Hold opens a batch: writes wait in the buffer until it ends.
func (c *batchConn) Hold() {
	c.mu.Lock()
	c.held++
	c.mu.Unlock()
}

// Release ends a batch and writes everything buffered, waiting for the
// network (the writer goroutine only).
func (c *batchConn) Release() error {
	c.mu.Lock()
	c.held--
	c.mu.Unlock()
	return c.Flush()
}

// tryRelease ends a batch and writes what is buffered without waiting for
// the network. flushed reports that everything written so far is on the
// socket; otherwise the writer goroutine has been asked to finish.
func (c *batchConn) tryRelease() (flushed bool, err error) {
	c.mu.Lock()
	c.held--
	c.mu.Unlock()
	return c.tryFlush()
}

// tryFlush writes the buffer with one system call that does not wait; what
// is left goes to the writer goroutine (kick).
func (c *batchConn) tryFlush() (flushed bool, err error) {
	c.mu.Lock()
	if c.flushing || c.held > 0 || c.err != nil || len(c.buf) == 0 {
		flushed = !c.flushing && c.held == 0 && len(c.buf) == 0
		err = c.err
		c.mu.Unlock()
		return flushed, err
	}
	c.flushing = true
	b := c.buf
	c.buf = c.spare[:0]
	c.mu.Unlock()
	n, werr := 0, error(nil)
	if c.raw != nil {
		n, werr = c.raw.TryWrite(b)
		werr = c.opError("write", werr)
	}
	c.mu.Lock()
	if werr != nil && c.err == nil {
		c.err = werr
	}
	if n < len(b) {
		// The rest goes first, before what others wrote meanwhile.
		rest := append(b[:0:0], b[n:]...)
		c.buf = append(rest, c.buf...)
	} else if cap(b) <= maxBatchBuffer {
		c.spare = b[:0]
	}
	c.flushing = false
	pending := len(c.buf) > 0 && c.err == nil
	kick, err := c.kick, c.err
	c.mu.Unlock()
	if pending {
		kick()
	}
	return !pending && err == nil, err
}

// Flush writes the buffer to the network until it is empty, waiting as
// needed (the writer goroutine). Only one goroutine writes at a time; the
// others leave their bytes to it.
func (c *batchConn) Flush() error {
	c.mu.Lock()
	if c.flushing || c.held > 0 {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.flushing = true
	for len(c.buf) > 0 && c.err == nil {
		b := c.buf
		c.buf = c.spare[:0]
		c.mu.Unlock()
		err := c.Conn.SetWriteDeadline(time.Now().Add(flushTimeout))
		if err == nil {
			if c.raw != nil {
				_, err = c.raw.Write(b)
				err = c.opError("write", err)
			} else {
				_, err = c.Conn.Write(b)
			}
		}
		c.mu.Lock()
		if cap(b) <= maxBatchBuffer {
			c.spare = b[:0]
		} else {
			c.spare = nil
		}
		if err != nil {
			c.err = err
		}
	}
	c.flushing = false
	err := c.err
	c.mu.Unlock()
	return err
}
