package datachannel

import (
	"bytes"
	"testing"

	"github.com/devgate/devgate/internal/ssmmsg"
	"github.com/devgate/devgate/internal/testutil"
)

// TestOutputBlocksReused: output that waits in several blocks and is then
// read allocates nothing once the blocks exist (they were garbage beyond the
// first, BENCHMARKS.md "Peak RSS"), and comes out whole and in order.
func TestOutputBlocksReused(t *testing.T) {
	s := newSession(Config{SessionID: "s", ReadBuffer: 1 << 20})
	defer s.shutdown()
	payload := make([]byte, 1000) // not a divisor of outBlock: messages straddle blocks
	m := &ssmmsg.Message{Type: ssmmsg.OutputStreamData, PayloadType: ssmmsg.PayloadOutput, Payload: payload}
	buf := make([]byte, 24<<10)
	var got []byte
	next := byte(0)
	cycle := func() {
		for range 3 * outBlock / len(payload) { // three blocks and more wait
			for i := range payload {
				payload[i] = next
			}
			next++
			s.deliver(m)
		}
		for s.buffered > 0 {
			n, err := s.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			if got != nil {
				got = append(got, buf[:n]...)
			}
		}
	}
	cycle()
	if n := testing.AllocsPerRun(20, cycle); n > 0 && !testutil.Race { // the race detector's instrumentation allocates
		t.Fatalf("%.1f allocations per cycle of output waiting in 4 blocks, want 0", n)
	}
	if len(s.free) > freeBlocks {
		t.Fatalf("%d free blocks kept, at most %d", len(s.free), freeBlocks)
	}
	got = []byte{}
	start := next
	cycle()
	per := len(payload)
	for i := 0; i < len(got); i += per {
		if want := bytes.Repeat([]byte{start + byte(i/per)}, per); !bytes.Equal(got[i:i+per], want) {
			t.Fatalf("message %d out of order or torn", i/per)
		}
	}
}
