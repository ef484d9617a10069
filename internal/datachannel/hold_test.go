//go:build linux

package datachannel_test

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/datachannel"
	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labtest"
	"github.com/devgate/devgate/internal/stdpipe"
	"github.com/devgate/devgate/internal/testutil"
)

// holds are the two ways a reader holds a paced stream (Config.Coalesce):
// waiting in the poller until the hold's end, and asleep on its thread
// (HoldThread, devgate connect's).
var holds = []struct {
	name string
	mod  func(*datachannel.Config)
}{
	{"poller", func(c *datachannel.Config) { c.Coalesce = datachannel.DefaultCoalesce }},
	{"thread", func(c *datachannel.Config) {
		c.Coalesce, c.HoldThread = datachannel.ConnectCoalesce, true
	}},
}

// At the agent's pace (one full message about every millisecond) a session
// that holds writes its output in batches of several messages, and acks
// them together: far fewer writes than messages, every byte once and in
// order, and no message retransmitted by the agent for a late ack.
func TestHoldPacedStream(t *testing.T) {
	for _, h := range holds {
		t.Run(h.name, func(t *testing.T) {
			fc := labtest.Fast()
			fc.Pacing = true
			l := labtest.Start(t, lab.Options{Faults: fc})
			data := make([]byte, 192<<10)
			rand.Read(data)
			port := labtest.Serve(t, sender(data))
			s := open(t, l, port, h.mod)
			defer s.Close()

			r, w := testutil.BlockingPipe(t)
			sw, err := stdpipe.Open(w)
			if err != nil {
				t.Fatal(err)
			}
			defer sw.Close()
			cw := &countingTryWriter{File: sw}
			got := make(chan []byte, 1)
			go func() { b, _ := io.ReadAll(r); got <- b }()
			n, err := s.WriteTo(cw)
			if err != nil || n != int64(len(data)) {
				t.Fatalf("WriteTo: %d bytes, %v; want %d, nil (channel_closed)", n, err, len(data))
			}
			sw.Close()
			w.Close()
			if b := <-got; !bytes.Equal(b, data) {
				t.Fatalf("the pipe holds %d bytes differing from the %d sent (order, loss or duplication)", len(b), len(data))
			}
			msgs, writes := int64(len(data)/1024), cw.calls.Load()
			if writes > msgs/2 {
				t.Fatalf("%d output writes for %d paced messages: not held (want at most half)", writes, msgs)
			}
			if d := s.Stats().Duplicates; d != 0 {
				t.Fatalf("the agent retransmitted %d messages: acks came too late", d)
			}
			t.Logf("%d messages written in %d writes", msgs, writes)
		})
	}
}

// A paced stream that stops on a full message (the agent's next read
// finds nothing) is not held for more: its output reaches WriteTo's pipe
// within the hold, and the session goes on. The target sends one full
// message when the client says go, and waits for it to come back before it
// sends the rest; a reader that held output until more arrived would never
// write it.
func TestHeldStreamThatStopsIsDelivered(t *testing.T) {
	for _, h := range holds {
		t.Run(h.name, func(t *testing.T) {
			fc := labtest.Fast()
			fc.Pacing = true
			l := labtest.Start(t, lab.Options{Faults: fc})
			first := make([]byte, 1024)
			rand.Read(first)
			port := labtest.Serve(t, func(c net.Conn) {
				var g [1]byte // the client's go: WriteTo is waiting by then
				if _, err := io.ReadFull(c, g[:]); err != nil {
					return
				}
				if _, err := c.Write(first); err != nil {
					return
				}
				back := make([]byte, len(first))
				if _, err := io.ReadFull(c, back); err != nil || !bytes.Equal(back, first) {
					return
				}
				_, _ = c.Write([]byte("done"))
			})
			s := open(t, l, port, h.mod)
			defer s.Close()
			r, w := testutil.BlockingPipe(t)
			sw, err := stdpipe.Open(w)
			if err != nil {
				t.Fatal(err)
			}
			defer sw.Close()
			go func() { _, _ = s.WriteTo(sw) }()
			time.Sleep(20 * time.Millisecond) // WriteTo waits for output (it does not find it buffered)
			if _, err := s.Write([]byte("g")); err != nil {
				t.Fatal(err)
			}
			got := make(chan []byte, 2)
			go func() {
				for _, n := range []int{len(first), 4} {
					b := make([]byte, n)
					if _, err := io.ReadFull(r, b); err != nil {
						got <- nil
						return
					}
					got <- b
				}
			}()
			select {
			case b := <-got:
				if !bytes.Equal(b, first) {
					t.Fatalf("read %d bytes differing from the full message sent", len(b))
				}
			case <-time.After(testutil.Deadline(10 * time.Second)):
				t.Fatal("one full message, then nothing: its output was held for more and never written")
			}
			if _, err := s.Write(first); err != nil {
				t.Fatal(err)
			}
			select {
			case b := <-got:
				if string(b) != "done" {
					t.Fatalf("after the held message: %q, want \"done\"", b)
				}
			case <-time.After(testutil.Deadline(10 * time.Second)):
				t.Fatal("the session did not go on after the held message")
			}
			// Nor did the agent's retransmission of an unacked message have
			// to end the hold.
			if d := s.Stats().Duplicates; d != 0 {
				t.Fatalf("the agent retransmitted %d messages: the held message's ack waited for more", d)
			}
		})
	}
}
