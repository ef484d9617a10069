package datachannel

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/devgate/devgate/internal/ssmmsg"
	"github.com/devgate/devgate/internal/testutil"
)

// recordConn is a net.Conn that records each Write (one system call each).
type recordConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (r *recordConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.writes = append(r.writes, append([]byte(nil), p...))
	r.mu.Unlock()
	return len(p), nil
}

func (r *recordConn) SetWriteDeadline(time.Time) error { return nil }

// newRecordBatchConn is a started batchConn over a recordConn, whose writer
// goroutine is played by kick (recordConn cannot be written without waiting).
func newRecordBatchConn() (*batchConn, *recordConn) {
	rc := &recordConn{}
	bc := newBatchConn(rc)
	bc.start(func() { _ = bc.Flush() })
	return bc, rc
}

func (r *recordConn) all() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Join(r.writes, nil)
}

func TestBatchConnOneWritePerBatchInOrder(t *testing.T) {
	bc, rc := newRecordBatchConn()
	if _, err := bc.Write([]byte("a")); err != nil { // outside a batch: on the socket at once
		t.Fatal(err)
	}
	if len(rc.writes) != 1 {
		t.Fatalf("a write outside a batch made %d socket writes, want 1", len(rc.writes))
	}
	bc.Hold()
	for _, s := range []string{"b", "c", "d"} {
		if _, err := bc.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if len(rc.writes) != 1 {
		t.Fatalf("writes inside a batch reached the socket before Release")
	}
	if err := bc.Release(); err != nil {
		t.Fatal(err)
	}
	if len(rc.writes) != 2 || string(rc.writes[1]) != "bcd" {
		t.Fatalf("socket writes %q, want [a bcd]", rc.writes)
	}
}

// Writers on several goroutines (the WebSocket writer in batches, pings and
// pongs outside them): every write reaches the socket whole and in the order
// the writers' own writes were made.
func TestBatchConnConcurrentWritersKeepOrder(t *testing.T) {
	bc, rc := newRecordBatchConn()
	const writers, per = 4, 500
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				batch := w%2 == 0 && i%10 == 0
				if batch {
					bc.Hold()
				}
				if _, err := fmt.Fprintf(bc, "<%d:%04d>", w, i); err != nil {
					t.Error(err)
				}
				if batch {
					if err := bc.Release(); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	got := rc.all()
	next := make([]int, writers)
	for len(got) > 0 {
		var w, i int
		if _, err := fmt.Sscanf(string(got[:8]), "<%d:%04d>", &w, &i); err != nil {
			t.Fatalf("torn write at %q: %v", got[:min(len(got), 16)], err)
		}
		if i != next[w] {
			t.Fatalf("writer %d: write %d reached the socket when %d was due", w, i, next[w])
		}
		next[w]++
		got = got[8:]
	}
	for w, n := range next {
		if n != per {
			t.Fatalf("writer %d: %d of %d writes reached the socket", w, n, per)
		}
	}
}

// countConn counts the writes that reach the socket.
type countConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countConn) Write(p []byte) (int, error) { c.writes.Add(1); return c.Conn.Write(p) }

// SyscallConn lets batchConn write without waiting (those writes are not counted).
func (c *countConn) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(*net.TCPConn).SyscallConn()
}

// testWSConn dials a WebSocket server that reads every message into got,
// through a batchConn over a countConn, as Session.dial does.
func testWSConn(t *testing.T) (*wsConn, *countConn, chan []byte) {
	got := make(chan []byte, 1024)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			got <- b
		}
	}))
	t.Cleanup(srv.Close)
	var cc *countConn
	var bc *batchConn
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var nd net.Dialer
		c, err := nd.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		cc = &countConn{Conn: c}
		bc = newBatchConn(cc)
		return bc, nil
	}}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return newWSConn(ws, bc, func([]byte) {}), cc, got
}

// The reader's acks wait while it processes received frames, but never more
// than ackBatch of them; then, and when it is about to wait for the network
// (flushAcks), they go on the socket together: one write.
func TestAcksHeldAtMostAckBatch(t *testing.T) {
	c, cc, got := testWSConn(t)
	ack := ssmmsg.AppendAck(nil, &ssmmsg.Message{Type: ssmmsg.OutputStreamData}, 1, ssmmsg.UUID{1})
	woken := func() bool {
		select {
		case <-c.kick:
			return true
		default:
			return false
		}
	}
	before := cc.writes.Load()
	c.beginBatch()
	for i := 1; i < ackBatch; i++ {
		if err := c.write(ack); err != nil {
			t.Fatal(err)
		}
		if woken() || cc.writes.Load() != before {
			t.Fatalf("ack %d of a batch was sent before the batch ended", i)
		}
	}
	if err := c.write(ack); err != nil {
		t.Fatal(err)
	}
	if !woken() {
		t.Fatalf("ack %d did not wake the writer (the bound is %d)", ackBatch, ackBatch)
	}
	c.qmu.Lock()
	c.queue = nil // the writer goroutine is not running: drop what it was woken for
	c.qmu.Unlock()
	for range 3 {
		if err := c.write(ack); err != nil {
			t.Fatal(err)
		}
	}
	c.flushAcks() // the writer is idle (not even running here): the reader writes them itself
	for range 3 {
		select {
		case b := <-got:
			if string(b) != string(ack) {
				t.Fatal("the server received another frame than the ack")
			}
		case <-time.After(testutil.Deadline(5 * time.Second)):
			t.Fatal("the held acks did not reach the server")
		}
	}
	// Outside a batch, and for data frames during one, the writer is woken at once.
	if err := c.write(ack); err != nil {
		t.Fatal(err)
	}
	if !woken() {
		t.Fatal("an ack outside a batch did not wake the writer")
	}
	c.beginBatch()
	data, _ := (&ssmmsg.Message{Type: ssmmsg.InputStreamData, CreatedDate: 1, Payload: []byte("x")}).Encode()
	if err := c.write(data); err != nil {
		t.Fatal(err)
	}
	if !woken() {
		t.Fatal("a data frame during a batch did not wake the writer")
	}
}

// writeFrame's frames are what a WebSocket server reads as binary messages,
// for every length encoding (7-bit, 16-bit, 64-bit) and a payload that is
// not a multiple of the mask's 4 or 8 bytes, with gorilla's own control
// frames written between them.
func TestWriteFrameReadByServer(t *testing.T) {
	c, _, got := testWSConn(t)
	for _, n := range []int{0, 1, 7, 125, 126, 1024 + 373, 0xffff, 0x10000, 70001} {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(i*7 + n)
		}
		c.wmu.Lock()
		err := c.writeFrame(p)
		c.wmu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.ws.WriteControl(websocket.PingMessage, []byte("keepalive"), time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		select {
		case b := <-got:
			if !bytes.Equal(b, p) {
				t.Fatalf("%d-byte message: the server read %d other bytes", n, len(b))
			}
		case <-time.After(testutil.Deadline(5 * time.Second)):
			t.Fatalf("%d-byte message: the server read nothing", n)
		}
	}
}
