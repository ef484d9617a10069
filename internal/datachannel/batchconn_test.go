package datachannel

import (
	"bytes"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/devgate/devgate/internal/ssmmsg"
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

func (r *recordConn) all() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Join(r.writes, nil)
}

func TestBatchConnOneWritePerBatchInOrder(t *testing.T) {
	rc := &recordConn{}
	bc := newBatchConn(rc)
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
	rc := &recordConn{}
	bc := newBatchConn(rc)
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

// The reader's acks wait while it processes received frames, but never more
// than ackBatch of them, and all go to the writer when it is about to wait.
func TestAcksHeldAtMostAckBatch(t *testing.T) {
	c := newWSConn(nil, newBatchConn(&recordConn{}), func([]byte) {})
	ack := ssmmsg.AppendAck(nil, &ssmmsg.Message{Type: ssmmsg.OutputStreamData}, 1, ssmmsg.UUID{1})
	woken := func() bool {
		select {
		case <-c.kick:
			return true
		default:
			return false
		}
	}
	c.beginBatch()
	for i := 1; i < ackBatch; i++ {
		if err := c.write(ack); err != nil {
			t.Fatal(err)
		}
		if woken() {
			t.Fatalf("the writer was woken for ack %d of a batch", i)
		}
	}
	if err := c.write(ack); err != nil {
		t.Fatal(err)
	}
	if !woken() {
		t.Fatalf("ack %d did not wake the writer (the bound is %d)", ackBatch, ackBatch)
	}
	if err := c.write(ack); err != nil {
		t.Fatal(err)
	}
	c.flushAcks()
	if !woken() {
		t.Fatal("flushAcks did not hand the held ack to the writer")
	}
	if n := len(c.queue); n != ackBatch+1 {
		t.Fatalf("%d frames queued, want %d", n, ackBatch+1)
	}
	// Outside a batch (and for data frames) the writer is woken at once.
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
