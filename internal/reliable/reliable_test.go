package reliable

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/ssmmsg"
	"github.com/devgate/devgate/internal/testutil"
	"go.uber.org/goleak"
)

// pair wires two endpoints through lossy, reordering in-memory links.
type pair struct {
	a, b   *Endpoint
	mu     sync.Mutex
	got    [][]byte
	rnd    *rand.Rand
	loss   float64
	toA    chan []byte
	toB    chan []byte
	stop   chan struct{}
	wg     sync.WaitGroup
	ready  func() bool
	copies int
}

func newPair(t *testing.T, loss float64, window int) *pair {
	p := &pair{rnd: rand.New(rand.NewPCG(1, 2)), loss: loss, toA: make(chan []byte, 100000), toB: make(chan []byte, 100000),
		stop: make(chan struct{}), ready: func() bool { return true }}
	p.a = New(Config{SendType: ssmmsg.InputStreamData, Window: window, Tick: 5 * time.Millisecond,
		Deliver: func(*ssmmsg.Message) bool { return true }})
	p.b = New(Config{SendType: ssmmsg.OutputStreamData, Tick: 5 * time.Millisecond, Deliver: func(m *ssmmsg.Message) bool {
		if !p.ready() {
			return false
		}
		p.mu.Lock()
		p.got = append(p.got, append([]byte(nil), m.Payload...))
		p.mu.Unlock()
		return true
	}})
	lossy := func(ch chan []byte) func([]byte) error {
		return func(f []byte) error {
			p.mu.Lock()
			drop := p.rnd.Float64() < p.loss
			p.mu.Unlock()
			if !drop {
				ch <- append([]byte(nil), f...)
			}
			return nil
		}
	}
	p.a.Attach(lossy(p.toB))
	p.b.Attach(lossy(p.toA))
	pump := func(ch chan []byte, e *Endpoint) {
		defer p.wg.Done()
		for {
			select {
			case <-p.stop:
				return
			case f := <-ch:
				m, err := ssmmsg.Decode(f)
				if err != nil {
					t.Errorf("decode: %v", err)
					return
				}
				if o := e.Receive(m); o != nil {
					t.Errorf("unexpected %s", o.Type)
				}
			}
		}
	}
	p.wg.Add(2)
	go pump(p.toB, p.b)
	go pump(p.toA, p.a)
	t.Cleanup(func() {
		close(p.stop)
		p.wg.Wait()
		p.a.Close()
		p.b.Close()
	})
	return p
}

func TestLossyInOrderDelivery(t *testing.T) {
	p := newPair(t, 0.2, 64<<10)
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Deadline(30*time.Second))
	defer cancel()
	const n = 2000
	for i := range n {
		if _, err := p.a.Send(ctx, ssmmsg.PayloadOutput, fmt.Appendf(nil, "msg-%05d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.a.WaitAcked(ctx); err != nil {
		t.Fatalf("WaitAcked: %v (unacked %v)", err, p.a.Stats())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.got) != n {
		t.Fatalf("delivered %d messages, want %d", len(p.got), n)
	}
	for i, g := range p.got {
		if want := fmt.Appendf(nil, "msg-%05d", i); !bytes.Equal(g, want) {
			t.Fatalf("message %d = %q, want %q", i, g, want)
		}
	}
	if s := p.a.Stats(); s.Retransmitted == 0 {
		t.Errorf("20%% loss but no retransmission: %+v", s)
	}
	if s := p.b.Stats(); s.Duplicates == 0 && s.Early == 0 {
		t.Errorf("20%% loss but no early or duplicate message seen: %+v", s)
	}
}

func TestWindowBlocksSend(t *testing.T) {
	e := New(Config{SendType: ssmmsg.InputStreamData, Window: 2048, Deliver: func(*ssmmsg.Message) bool { return true }})
	defer e.Close()
	ctx := context.Background()
	for range 2 {
		if _, err := e.Send(ctx, ssmmsg.PayloadOutput, make([]byte, 1024)); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := e.Send(short, ssmmsg.PayloadOutput, make([]byte, 1)); err != context.DeadlineExceeded {
		t.Fatalf("Send with a full window = %v, want it to block until the deadline", err)
	}
	// An ack for seq 0 frees the window.
	ack, _ := ssmmsg.NewAck(&ssmmsg.Message{Type: ssmmsg.InputStreamData, SequenceNumber: 0}, 1, NewID())
	e.Receive(ack)
	if _, err := e.Send(ctx, ssmmsg.PayloadOutput, make([]byte, 1)); err != nil {
		t.Fatalf("Send after ack: %v", err)
	}
	if m, b := e.Unacked(); m != 2 || b != 1025 {
		t.Fatalf("Unacked = %d msgs %d bytes, want 2, 1025", m, b)
	}
}

func TestNotReadyIsNotAcked(t *testing.T) {
	p := newPair(t, 0, 0)
	var mu sync.Mutex
	ready := false
	p.ready = func() bool { mu.Lock(); defer mu.Unlock(); return ready }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.a.Send(ctx, ssmmsg.PayloadOutput, []byte("banner")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if m, _ := p.a.Unacked(); m != 1 {
		t.Fatalf("a message the peer could not take was acked (unacked %d)", m)
	}
	mu.Lock()
	ready = true
	mu.Unlock()
	if err := p.a.WaitAcked(ctx); err != nil {
		t.Fatal(err)
	}
	if len(p.got) != 1 || string(p.got[0]) != "banner" {
		t.Fatalf("got %q", p.got)
	}
}

func TestRTO(t *testing.T) {
	e := New(Config{SendType: ssmmsg.InputStreamData, Deliver: func(*ssmmsg.Message) bool { return true }})
	defer e.Close()
	if e.RTO() != 200*time.Millisecond {
		t.Fatalf("initial RTO %v, want 200ms", e.RTO())
	}
	e.mu.Lock()
	for range 50 {
		e.sampleLocked(5 * time.Millisecond)
	}
	low := e.rto
	for range 50 {
		e.sampleLocked(2 * time.Second)
	}
	high := e.rto
	e.mu.Unlock()
	if low < 5*time.Millisecond+clockG-time.Millisecond || low > 20*time.Millisecond {
		t.Errorf("RTO after 5 ms samples = %v, want about SRTT+10ms", low)
	}
	if high <= 2*time.Second || high > maxRTO {
		t.Errorf("RTO after 2 s samples = %v, want above the 2 s round trip (not the official 1 s cap) and at most %v", high, maxRTO)
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRecycleAckReusesFrame: an ack frame given back with RecycleAck is the
// memory of the next ack (no allocation per message received), that ack is
// whole and right, and frames that are not acks are not taken.
func TestRecycleAckReusesFrame(t *testing.T) {
	var frames [][]byte
	e := New(Config{SendType: ssmmsg.InputStreamData, Deliver: func(*ssmmsg.Message) bool { return true }})
	defer e.Close()
	e.Attach(func(f []byte) error { frames = append(frames, f); return nil })
	in := func(seq int64) *ssmmsg.Message {
		return &ssmmsg.Message{Type: ssmmsg.OutputStreamData, SchemaVersion: 1, CreatedDate: 1, SequenceNumber: seq,
			MessageID: NewID(), PayloadType: ssmmsg.PayloadOutput, Payload: []byte("x")}
	}
	ackOf := func(f []byte) int64 {
		t.Helper()
		m, err := ssmmsg.Decode(f)
		if err != nil {
			t.Fatal(err)
		}
		a, err := ssmmsg.ParseAck(m)
		if err != nil {
			t.Fatal(err)
		}
		return a.AcknowledgedMessageSequenceNumber
	}
	e.Receive(in(0))
	if len(frames) != 1 || !IsAck(frames[0]) || ackOf(frames[0]) != 0 {
		t.Fatalf("first ack: %d frames", len(frames))
	}
	first := &frames[0][0]
	e.RecycleAck(frames[0])
	e.RecycleAck(frame(t, 7)) // a stream message: ignored
	e.Receive(in(1))
	if len(frames) != 2 || &frames[1][0] != first {
		t.Fatal("the second ack did not reuse the recycled frame")
	}
	if got := ackOf(frames[1]); got != 1 {
		t.Fatalf("second ack acknowledges %d, want 1", got)
	}
	e.RecycleAck(frames[1])
	m := in(2)
	if n := testing.AllocsPerRun(100, func() {
		frames = frames[:0]
		m.SequenceNumber = e.Expected()
		e.Receive(m)
		e.RecycleAck(frames[0])
	}); n > 0 && !testutil.Race { // the race detector's instrumentation allocates
		t.Fatalf("%.1f allocations per message received and acked, want 0", n)
	}
}

func frame(t *testing.T, seq int64) []byte {
	m := ssmmsg.Message{Type: ssmmsg.InputStreamData, CreatedDate: 1, SequenceNumber: seq, PayloadType: ssmmsg.PayloadOutput,
		Payload: make([]byte, ackFrameCap-ssmmsg.HeaderSize)} // an ack frame's capacity, not an ack
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Message ids are version-4 UUIDs and do not repeat.
func TestNewIDUnique(t *testing.T) {
	seen := map[ssmmsg.UUID]bool{}
	for range 100000 {
		u := NewID()
		if u[6]>>4 != 4 || u[8]>>6 != 2 {
			t.Fatalf("%s is not a version-4 UUID", u)
		}
		if seen[u] {
			t.Fatalf("%s twice", u)
		}
		seen[u] = true
	}
}

func BenchmarkNewID(b *testing.B) {
	for b.Loop() {
		NewID()
	}
}
