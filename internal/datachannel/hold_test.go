//go:build linux

package datachannel_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
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
		c.Coalesce, c.HoldThread = datachannel.DefaultCoalesce, true
	}},
}

// pacedLab starts a lab whose agent paces its streams as the real one does
// (1 KiB messages, 1 ms sleep each, §8), 30 ms away each way (a round trip
// under the agent's initial RTO of 200 ms).
func pacedLab(t *testing.T) *lab.Lab {
	fc := labtest.Fast()
	fc.Pacing = true
	fc.DataDelay = 30 * time.Millisecond
	return labtest.Start(t, lab.Options{Faults: fc})
}

// stdoutPipe is what ssh gives devgate connect as its stdout: a pipe, its
// write end opened with stdpipe (closed when the test ends).
func stdoutPipe(t *testing.T) (r, w *os.File, sw *stdpipe.File) {
	r, w = testutil.BlockingPipe(t)
	sw, err := stdpipe.Open(w)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	return r, w, sw
}

// At the agent's pace (one full message about every millisecond) a session
// that holds writes its output in batches of several messages, and acks
// them together: far fewer writes than messages, every byte once and in
// order, and no message retransmitted by the agent for a late ack.
func TestHoldPacedStream(t *testing.T) {
	for _, h := range holds {
		t.Run(h.name, func(t *testing.T) {
			l := pacedLab(t)
			data := make([]byte, 192<<10)
			rand.Read(data)
			port := labtest.Serve(t, sender(data))
			s := open(t, l, port, h.mod)
			defer s.Close()

			r, w, sw := stdoutPipe(t)
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
			// The agent's RTO is SRTT + max(10 ms, 4·RTTVAR) (§5.5): a held
			// group's first ack (~5 ms late) leaves it little room on a
			// loaded machine, more so as the lab runs in this process (the
			// thread variant's sleep holds one of its Ps). A hold that
			// outlived its bound would have nearly every message resent.
			if d := s.Stats().Duplicates; d > msgs/4 {
				t.Fatalf("the agent retransmitted %d of %d messages: acks came too late", d, msgs)
			}
			holds, sleeps, _ := s.HoldStats()
			if holds < msgs/8 {
				t.Fatalf("%d holds for %d paced messages", holds, msgs)
			}
			t.Logf("%d messages written in %d writes; %d holds, %d asleep", msgs, writes, holds, sleeps)
		})
	}
}

// A stream that is not paced (messages 0.2 ms apart, five times the agent's
// pace: a local agent, a fast target) is not slept on after its first
// group shows its rate: a sleeping reader would let the socket fill.
// Every byte arrives once and in order.
func TestHoldThreadDoesNotSleepUnpaced(t *testing.T) {
	l := labtest.Start(t, lab.Options{}) // labtest.Fast: no pacing
	const msgs = 2048
	data := make([]byte, msgs*1024)
	rand.Read(data)
	port := labtest.Serve(t, func(c net.Conn) {
		next := time.Now()
		for i := 0; i < len(data); i += 1024 {
			for time.Now().Before(next) { // a spin: Go's timers would round 0.2 ms up to 1 ms
			}
			next = next.Add(200 * time.Microsecond)
			if _, err := c.Write(data[i : i+1024]); err != nil {
				return
			}
		}
	})
	s := open(t, l, port, holds[1].mod)
	defer s.Close()
	var got bytes.Buffer
	n, err := s.WriteTo(&got)
	if err != nil || n != int64(len(data)) || !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("WriteTo: %d bytes, %v; want the %d sent, once and in order", n, err, len(data))
	}
	holds, sleeps, _ := s.HoldStats()
	// The first group may sleep before its rate is known, and a stall (a
	// loaded machine) may make one look paced; a reader that slept on every
	// group would sleep once per twenty-odd messages.
	if sleeps > msgs/64 {
		t.Fatalf("the reader slept %d times (of %d holds) on an unpaced stream of %d messages", sleeps, holds, msgs)
	}
	t.Logf("%d messages: %d holds, %d asleep", msgs, holds, sleeps)
}

// A paced stream that stops on a full message (the agent's next read
// finds nothing) is not held for more: its output reaches WriteTo's pipe
// within the hold, and the session goes on. The target sends 65–68 full
// messages when the client says go (the last group is cut short, after the
// reader knows the agent's period and sleeps for it), and waits for them to
// come back before it sends the rest; a reader that held output until more
// arrived would write them only when the agent retransmitted the unacked
// messages.
func TestHeldStreamThatStopsIsDelivered(t *testing.T) {
	for _, h := range holds {
		// Four lengths: whichever way the groups fall, one stream's last
		// group is cut short.
		var empty int64 // holds that ended with nothing read, over the four lengths
		for msgs := 65; msgs <= 68; msgs++ {
			t.Run(fmt.Sprintf("%s/%d", h.name, msgs), func(t *testing.T) {
				l := pacedLab(t)
				first := make([]byte, msgs*1024)
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
				r, _, sw := stdoutPipe(t)
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
						t.Fatalf("read %d bytes differing from the %d sent", len(b), len(first))
					}
				case <-time.After(testutil.Deadline(10 * time.Second)):
					t.Fatal("full messages, then nothing: the last ones were held for more and never written")
				}
				if _, err := s.Write(first); err != nil {
					t.Fatal(err)
				}
				select {
				case b := <-got:
					if string(b) != "done" {
						t.Fatalf("after the held messages: %q, want \"done\"", b)
					}
				case <-time.After(testutil.Deadline(10 * time.Second)):
					t.Fatal("the session did not go on after the held messages")
				}
				_, _, e := s.HoldStats()
				empty += e
			})
		}
		// Whichever way the groups fell, some stream's last group was
		// cut short: its hold ended with nothing read, and that is what
		// wrote it. A reader that waited for more instead was rescued
		// only by the agent's retransmission (its RTO), and counts none.
		if empty == 0 {
			t.Errorf("%s: no hold ended with nothing read over four streams that stop mid-group: held output waited for more", h.name)
		}
	}
}
