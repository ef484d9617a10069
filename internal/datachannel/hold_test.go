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
			holds, sleeps := s.HoldStats()
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
	holds, sleeps := s.HoldStats()
	// The first group may sleep before its rate is known, and a stall (a
	// loaded machine) may make one look paced; a reader that slept on every
	// group would sleep once per twenty-odd messages.
	if sleeps > msgs/64 {
		t.Fatalf("the reader slept %d times (of %d holds) on an unpaced stream of %d messages", sleeps, holds, msgs)
	}
	t.Logf("%d messages: %d holds, %d asleep", msgs, holds, sleeps)
}
