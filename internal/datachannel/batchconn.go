package datachannel

import (
	"net"
	"sync"
)

// batchConn is the network connection under the WebSocket (and under TLS for
// wss): it lets the socket's writer put several frames on the wire with one
// write system call, and it tells the socket's reader when it is about to
// wait for the network.
//
// Writes go to a buffer. Outside a batch (Hold … Release) the writer then
// flushes at once, so a write is on the socket when Write returns, as with a
// plain connection; inside a batch the bytes wait for Release. Bytes reach
// the socket in the order they were written, whichever goroutine flushes
// (TLS records must not be reordered). Reads pass through, after calling
// beforeRead: the reader has processed every frame already received and is
// about to wait for more, which is when what it queued (acks, wake-ups of the
// stdout side) is handed on.
type batchConn struct {
	net.Conn
	// beforeRead is called by Read before it reads the network (the
	// WebSocket's reader goroutine only); nil: nothing.
	beforeRead func()

	mu       sync.Mutex
	buf      []byte // written, not yet handed to the network
	spare    []byte // the other buffer, reused by flush
	held     int    // open batches
	flushing bool   // a flush is writing to the network
	err      error  // the first write error: every later write fails with it
}

// maxBatchBuffer is how much of a flushed buffer is kept for reuse.
const maxBatchBuffer = 256 << 10

func newBatchConn(c net.Conn) *batchConn { return &batchConn{Conn: c} }

func (c *batchConn) Read(p []byte) (int, error) {
	if c.beforeRead != nil {
		c.beforeRead()
	}
	return c.Conn.Read(p)
}

// Write queues p and, outside a batch, flushes.
func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return 0, err
	}
	c.buf = append(c.buf, p...)
	later := c.held > 0 || c.flushing // Release, or the flush under way, writes it
	c.mu.Unlock()
	if later {
		return len(p), nil
	}
	return len(p), c.flush()
}

// Hold opens a batch: writes wait in the buffer until Release.
func (c *batchConn) Hold() {
	c.mu.Lock()
	c.held++
	c.mu.Unlock()
}

// Release closes a batch and flushes what was written: one write system
// call for all of it (unless another goroutine's flush is under way: that
// one writes it).
func (c *batchConn) Release() error {
	c.mu.Lock()
	c.held--
	c.mu.Unlock()
	return c.flush()
}

// flush writes the buffer to the network until it is empty; only one
// goroutine flushes at a time, and the others leave their bytes to it.
func (c *batchConn) flush() error {
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
		_, err := c.Conn.Write(b)
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
