// Package reliable is the end-to-end reliability layer of a Session Manager
// data channel, shared by devgate's client (internal/datachannel) and the
// lab's emulated agent (internal/lab/mgs): sequence numbers, one ack per
// stream message, in-order delivery with an out-of-order buffer, re-acks of
// duplicates, and retransmission of every overdue message with the RTO of
// protocol doc §5.5 (samples per RFC 6298 with Karn's rule).
//
// When the link reports when each frame actually left (Config.TrackDepartures
// and Departed), an Endpoint keeps at most Config.QueueBudget bytes written to
// the link and not yet gone, holds the rest of its window itself, and measures
// the RTO from departure: a slow link's queue then neither looks like loss
// (the retransmission storm of a 1 s RTO cap behind a deep queue) nor is lost
// whole when the socket drops. After a reconnect it resends what is unacked
// through that same budget, so that acks still arriving for the old link
// remove messages before they are resent.
//
// Where the official endpoints lose data (§9 items 18 and 21: evicting or
// refusing messages when a buffer is full, dying on a failed send), an
// Endpoint applies backpressure instead: Send blocks while the window of
// unacked payload bytes is full, and a message that could not be written is
// kept and retransmitted on the next link.
//
// It does no I/O of its own: the caller attaches a write function per
// WebSocket and feeds every decoded frame to Receive. It does not know about
// handshakes, flags or session types; Deliver decides what a payload means.
package reliable

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/devgate/devgate/internal/ssmmsg"
)

// Defaults of Config.
const (
	DefaultWindow   = 4 << 20 // unacked payload bytes before Send blocks
	DefaultMaxEarly = 10000   // out-of-order messages held (the plugin's buffer size)
	DefaultTick     = 50 * time.Millisecond
	// DefaultQueueBudget is the frame bytes written to a link and not yet
	// departed when Config.TrackDepartures is set.
	DefaultQueueBudget = 64 << 10
)

// RTO constants of §5.1, except the cap: the official endpoints cap the RTO at
// 1 s, which turns any path whose round trip exceeds 1 s (a bottleneck queue
// behind a full window) into a stream of spurious retransmissions. devgate
// caps it at 3 s: above such round trips on the links the lab models, and low
// enough that a message lost on a lossy link is retried within seconds
// (RFC 6298 §2.5's 60 s made a 20 %-loss transfer's tail several times
// slower). The per-message backoff (retransmitLocked) is capped by it too.
const (
	initialRTO = 200 * time.Millisecond
	initialRTT = 100 * time.Millisecond
	maxRTO     = 3 * time.Second
	clockG     = 10 * time.Millisecond
	alpha      = 1.0 / 8
	beta       = 1.0 / 4
)

// ErrClosed is returned by Send after Close.
var ErrClosed = errors.New("reliable: endpoint closed")

// Config configures an Endpoint.
type Config struct {
	// SendType is the MessageType of this side's stream messages
	// (ssmmsg.InputStreamData for a client, OutputStreamData for an agent).
	SendType string
	// Window bounds the unacked payload bytes; Send blocks beyond it.
	Window int
	// MaxEarly bounds the out-of-order buffer; a message beyond it is dropped unacked.
	MaxEarly int
	// Deliver is called in sequence order, from the goroutine that calls
	// Receive, for every peer stream message. It returns false when the
	// payload cannot be taken yet ("handler not ready", §9 item 9): the
	// message is then not acked, and the peer's retransmission retries it.
	Deliver func(m *ssmmsg.Message) bool
	// Acked, if set, is called after the ack of a delivered message was
	// written (the lab acks HandshakeResponse before sending HandshakeComplete).
	Acked func(m *ssmmsg.Message)
	// Tick is how often overdue messages are looked for.
	Tick time.Duration
	// TrackDepartures says the attached link calls Departed for every frame
	// once it has left (was written to the socket). The Endpoint then keeps
	// at most QueueBudget frame bytes written and not departed, and measures
	// RTT and RTO from departure. Without it a frame counts as departed when
	// the write function returns.
	TrackDepartures bool
	// QueueBudget is that bound in frame bytes (default DefaultQueueBudget).
	QueueBudget int
	// Now is the clock (time.Now when nil).
	Now    func() time.Time
	Logger *slog.Logger
}

// Where a pending message is.
const (
	unsent   uint8 = iota // held by the Endpoint (window open, link budget full, detached or paused)
	queued                // handed to the write function, not yet departed
	departed              // on the wire since lastSent
)

type pending struct {
	seq      int64
	frame    []byte
	size     int
	state    uint8
	sent     bool      // written at least once: a later write is a retransmission
	lastSent time.Time // departure of the latest copy
	resent   bool      // Karn: no RTT sample from it
	tries    uint      // retransmissions on the current link; each doubles the wait
}

// maxBackoffShift caps the per-message backoff at 64 RTOs (and maxRTO).
const maxBackoffShift = 6

// Endpoint is one side's reliability state for one session. It survives
// reconnects: Detach the old write function, Attach the new one.
type Endpoint struct {
	cfg Config

	mu       sync.Mutex
	cond     *sync.Cond
	write    func([]byte) error // nil while detached
	linkGen  int
	paused   bool
	nextSeq  int64
	unacked  []*pending // in sequence order
	next     int        // index in unacked of the first unsent message; all before it were written
	queued   int        // frame bytes written and not departed (TrackDepartures)
	inflight int        // payload bytes in unacked
	srtt     float64
	rttvar   float64
	rto      time.Duration
	closed   bool
	stop     chan struct{}
	done     chan struct{}

	ackFree [][]byte // emptied ack frames (RecycleAck)

	recvMu   sync.Mutex // serializes Receive
	expected int64
	early    map[int64]*ssmmsg.Message

	stats counters
}

// counters are updated without e.mu: they sit on the per-message path.
type counters struct {
	sent, retransmitted, received, duplicates, early, notReady, acksSent, acksReceived atomic.Int64
}

// Stats counts what an Endpoint did; for tests and logs.
type Stats struct {
	Sent, Retransmitted, Received, Duplicates, Early, NotReady, AcksSent, AcksReceived int64
}

// New returns an Endpoint, detached, and starts its retransmission timer.
func New(cfg Config) *Endpoint {
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.MaxEarly <= 0 {
		cfg.MaxEarly = DefaultMaxEarly
	}
	if cfg.Tick <= 0 {
		cfg.Tick = DefaultTick
	}
	if cfg.QueueBudget <= 0 {
		cfg.QueueBudget = DefaultQueueBudget
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Endpoint{cfg: cfg, rto: initialRTO, srtt: float64(initialRTT), early: map[int64]*ssmmsg.Message{},
		stop: make(chan struct{}), done: make(chan struct{})}
	e.cond = sync.NewCond(&e.mu)
	go e.retransmitLoop()
	return e
}

// ids generates message ids: ChaCha8, a cryptographically strong generator
// (math/rand/v2), seeded from crypto/rand. One id per ack and per message
// sent: crypto/rand's own call (the getrandom vDSO and its DRBG) was ~2 % of
// an unpaced download's CPU.
var ids struct {
	sync.Mutex
	r *mrand.ChaCha8
}

// NewID returns a random (version 4) message id.
func NewID() ssmmsg.UUID {
	var u ssmmsg.UUID
	ids.Lock()
	if ids.r == nil {
		var seed [32]byte
		_, _ = rand.Read(seed[:])
		ids.r = mrand.NewChaCha8(seed)
	}
	_, _ = ids.r.Read(u[:])
	ids.Unlock()
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

func (e *Endpoint) millis() uint64 { return uint64(e.cfg.Now().UnixMilli()) }

// Attach makes write the way frames reach the peer and resends everything
// unacked on it, in order (within the queue budget when departures are
// tracked: the rest follows as frames depart, and acks that still arrive for
// the old link take messages off before they are resent). write must be
// safe for concurrent use, must not block, and must not call back into the
// Endpoint: it is called with the Endpoint's lock held, to keep frames in
// sequence order.
func (e *Endpoint) Attach(write func([]byte) error) {
	e.mu.Lock()
	e.write = write
	e.linkGen++
	for _, p := range e.unacked {
		p.state = unsent
		p.tries = 0
	}
	e.next = 0
	e.queued = 0
	e.pumpLocked()
	e.cond.Broadcast()
	e.mu.Unlock()
}

// Detach forgets the current write function; Send keeps buffering.
func (e *Endpoint) Detach() {
	e.mu.Lock()
	e.write = nil
	e.linkGen++
	e.mu.Unlock()
}

// SetPaused stops (true) or resumes (false) putting stream messages on the
// wire (pause_publication / start_publication, §5.6). Acks still flow.
func (e *Endpoint) SetPaused(p bool) {
	e.mu.Lock()
	e.paused = p
	e.pumpLocked()
	e.cond.Broadcast()
	e.mu.Unlock()
}

// Paused reports whether the endpoint is paused.
func (e *Endpoint) Paused() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.paused
}

// Send sequences payload as one stream message of type pt and sends it when
// attached and not paused. It blocks while the window is full, until ctx ends
// or the endpoint is closed. A failed write is not an error: the message stays
// unacked and is retransmitted. It returns the sequence number used.
func (e *Endpoint) Send(ctx context.Context, pt ssmmsg.PayloadType, payload []byte) (int64, error) {
	if len(payload) == 0 {
		return 0, errors.New("reliable: empty payload (§9 item 16)")
	}
	e.mu.Lock()
	for !e.closed && e.inflight > 0 && e.inflight+len(payload) > e.cfg.Window {
		if err := e.waitLocked(ctx); err != nil {
			e.mu.Unlock()
			return 0, err
		}
	}
	if e.closed {
		e.mu.Unlock()
		return 0, ErrClosed
	}
	seq := e.nextSeq
	m := ssmmsg.Message{Type: e.cfg.SendType, SchemaVersion: ssmmsg.SchemaVersion, CreatedDate: e.millis(),
		SequenceNumber: seq, MessageID: NewID(), PayloadType: pt, Payload: payload}
	if seq == 0 && e.cfg.SendType == ssmmsg.OutputStreamData {
		m.Flags = ssmmsg.FlagsSYN // as the agent does (§3.3)
	}
	frame, err := m.Encode()
	if err != nil {
		e.mu.Unlock()
		return 0, err
	}
	e.nextSeq++
	e.unacked = append(e.unacked, &pending{seq: seq, frame: frame, size: len(payload)})
	e.inflight += len(payload)
	e.stats.sent.Add(1)
	e.pumpLocked()
	e.mu.Unlock()
	return seq, nil
}

// pumpLocked writes unsent messages in order while attached, not paused and
// within the queue budget (one frame always fits an empty queue). A failed
// write leaves the frame for the retransmission timer (or the next link).
func (e *Endpoint) pumpLocked() {
	if e.write == nil || e.paused {
		return
	}
	now := time.Time{}
	for e.next < len(e.unacked) {
		p := e.unacked[e.next]
		if e.cfg.TrackDepartures && e.queued > 0 && e.queued+len(p.frame) > e.cfg.QueueBudget {
			return
		}
		e.next++
		if now.IsZero() {
			now = e.cfg.Now()
		}
		if !e.writeLocked(p, now) {
			return
		}
	}
}

// writeLocked writes p's frame; it reports whether the write succeeded.
func (e *Endpoint) writeLocked(p *pending, now time.Time) bool {
	if p.sent {
		p.resent = true
		e.stats.retransmitted.Add(1)
	}
	p.sent = true
	p.lastSent = now
	err := e.write(p.frame)
	if err == nil && e.cfg.TrackDepartures {
		p.state = queued
		e.queued += len(p.frame)
		return true
	}
	p.state = departed // sent, or lost on the way: the timer retransmits it
	if err != nil {
		e.cfg.Logger.Debug("reliable: write failed; kept for retransmission", "seq", p.seq, "err", err)
		return false
	}
	return true
}

// Departed tells the Endpoint that frame, written by its write function, has
// left (was written to the socket). Frames that are not this Endpoint's
// stream messages (acks, service messages) are ignored. It is a no-op unless
// Config.TrackDepartures is set.
func (e *Endpoint) Departed(frame []byte) {
	if !e.cfg.TrackDepartures {
		return
	}
	seq, ok := streamSeq(frame, e.cfg.SendType)
	if !ok {
		return
	}
	now := e.cfg.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	i, ok := e.findLocked(seq)
	if !ok {
		return
	}
	p := e.unacked[i]
	if p.state != queued || &p.frame[0] != &frame[0] {
		return
	}
	p.state = departed
	p.lastSent = now
	e.queued -= len(p.frame)
	e.pumpLocked()
}

// streamSeq returns the sequence number of a stream frame of type typ (§3 layout).
func streamSeq(frame []byte, typ string) (int64, bool) {
	if len(frame) < ssmmsg.HeaderSize || len(frame) < 4+len(typ) || string(frame[4:4+len(typ)]) != typ {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(frame[48:56])), true
}

// findLocked returns the index in unacked of the message with sequence seq.
func (e *Endpoint) findLocked(seq int64) (int, bool) {
	u := e.unacked
	if len(u) > 0 && u[0].seq == seq { // the common case: acks in order
		return 0, true
	}
	i := sort.Search(len(u), func(i int) bool { return u[i].seq >= seq })
	return i, i < len(u) && u[i].seq == seq
}

// waitLocked waits on cond until woken or ctx is done.
func (e *Endpoint) waitLocked(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() {
		e.mu.Lock()
		e.cond.Broadcast()
		e.mu.Unlock()
	})
	e.cond.Wait()
	stop()
	return ctx.Err()
}

// WaitAcked blocks until every sent message has been acked, ctx ends or the
// endpoint is closed.
func (e *Endpoint) WaitAcked(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for len(e.unacked) > 0 {
		if e.closed {
			return ErrClosed
		}
		if err := e.waitLocked(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Unacked returns the number of messages and payload bytes not yet acked.
func (e *Endpoint) Unacked() (msgs, bytes int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.unacked), e.inflight
}

// RTO returns the current retransmission timeout.
func (e *Endpoint) RTO() time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rto
}

// Expected returns the next peer sequence number to be delivered.
func (e *Endpoint) Expected() int64 {
	e.recvMu.Lock()
	defer e.recvMu.Unlock()
	return e.expected
}

// Stats returns a copy of the counters.
func (e *Endpoint) Stats() Stats {
	c := &e.stats
	return Stats{Sent: c.sent.Load(), Retransmitted: c.retransmitted.Load(), Received: c.received.Load(),
		Duplicates: c.duplicates.Load(), Early: c.early.Load(), NotReady: c.notReady.Load(),
		AcksSent: c.acksSent.Load(), AcksReceived: c.acksReceived.Load()}
}

// Receive handles one decoded frame from the peer. Acks update the window;
// the peer's stream messages are acked, delivered in order and buffered when
// early; duplicates are re-acked (§9 item 8). Everything else
// (channel_closed, publication messages, unknown types) is returned for the
// caller to handle. Receive must not be called concurrently with itself.
func (e *Endpoint) Receive(m *ssmmsg.Message) (other *ssmmsg.Message) {
	switch m.Type {
	case ssmmsg.Acknowledge:
		e.handleAck(m)
		return nil
	case ssmmsg.InputStreamData, ssmmsg.OutputStreamData:
		if m.Type == e.cfg.SendType {
			e.cfg.Logger.Debug("reliable: stream message of our own direction ignored", "type", m.Type)
			return nil
		}
		e.handleStream(m)
		return nil
	default:
		return m
	}
}

func (e *Endpoint) handleAck(m *ssmmsg.Message) {
	a, err := ssmmsg.ParseAck(m)
	if err != nil {
		e.cfg.Logger.Debug("reliable: bad ack ignored", "err", err)
		return
	}
	now := e.cfg.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stats.acksReceived.Add(1)
	i, ok := e.findLocked(a.AcknowledgedMessageSequenceNumber)
	if !ok {
		return
	}
	p := e.unacked[i]
	switch p.state {
	case departed:
		if !p.resent { // Karn: samples from retransmissions are ambiguous
			e.sampleLocked(now.Sub(p.lastSent))
		}
	case queued: // acked before its departure was reported
		e.queued -= len(p.frame)
	}
	if i == 0 {
		e.unacked[0] = nil
		e.unacked = e.unacked[1:]
	} else {
		e.unacked = append(e.unacked[:i], e.unacked[i+1:]...)
	}
	if i < e.next {
		e.next--
	}
	e.inflight -= p.size
	e.pumpLocked()
	e.cond.Broadcast()
}

// sampleLocked updates SRTT, RTTVAR and RTO (§5.5).
func (e *Endpoint) sampleLocked(r time.Duration) {
	rf := float64(r)
	e.rttvar = (1-beta)*e.rttvar + beta*math.Abs(e.srtt-rf)
	e.srtt = (1-alpha)*e.srtt + alpha*rf
	rto := time.Duration(e.srtt + math.Max(float64(clockG), 4*e.rttvar))
	e.rto = min(rto, maxRTO)
}

func (e *Endpoint) handleStream(m *ssmmsg.Message) {
	e.recvMu.Lock()
	defer e.recvMu.Unlock()
	e.stats.received.Add(1)
	switch {
	case m.SequenceNumber < e.expected:
		e.stats.duplicates.Add(1)
		e.ack(m)
	case m.SequenceNumber > e.expected:
		if _, ok := e.early[m.SequenceNumber]; !ok && len(e.early) >= e.cfg.MaxEarly {
			e.cfg.Logger.Debug("reliable: out-of-order buffer full; dropped unacked", "seq", m.SequenceNumber)
			return
		}
		e.stats.early.Add(1)
		cp := *m
		cp.Payload = append([]byte(nil), m.Payload...)
		e.early[m.SequenceNumber] = &cp
		e.ack(m)
	default:
		if !e.deliver(m) {
			return
		}
		for {
			next, ok := e.early[e.expected]
			if !ok {
				break
			}
			// Early messages were acked on arrival; deliver them now.
			if !e.cfg.Deliver(next) {
				e.stats.notReady.Add(1)
				return
			}
			delete(e.early, e.expected)
			e.expected++
		}
	}
}

// deliver hands the in-order message m to Deliver; on success it records it
// as received before acking (§9 item 23: delivery is idempotent).
func (e *Endpoint) deliver(m *ssmmsg.Message) bool {
	if !e.cfg.Deliver(m) {
		e.stats.notReady.Add(1)
		return false
	}
	e.expected++
	e.ack(m)
	if e.cfg.Acked != nil {
		e.cfg.Acked(m)
	}
	return true
}

// ackFrameCap fits the frame of any ack of a stream message (header and a JSON body of at most 224 bytes).
const ackFrameCap = ssmmsg.HeaderSize + 224

// maxAckFree bounds the ack frames kept for reuse (RecycleAck): more than
// the acks a link holds at once (datachannel's reader batches up to 64).
const maxAckFree = 128

func (e *Endpoint) ack(m *ssmmsg.Message) {
	// The frame belongs to the write function until it has left; a link
	// that says so (RecycleAck) lets the next ack reuse it.
	e.mu.Lock()
	w := e.write
	e.stats.acksSent.Add(1)
	var buf []byte
	if n := len(e.ackFree); n > 0 && w != nil {
		buf = e.ackFree[n-1]
		e.ackFree[n-1] = nil
		e.ackFree = e.ackFree[:n-1]
	}
	e.mu.Unlock()
	if w == nil {
		return
	}
	if buf == nil {
		buf = make([]byte, 0, ackFrameCap)
	}
	frame := ssmmsg.AppendAck(buf, m, e.millis(), NewID())
	if err := w(frame); err != nil {
		e.cfg.Logger.Debug("reliable: ack not sent", "seq", m.SequenceNumber, "err", err)
	}
}

// RecycleAck takes back an acknowledge frame that this Endpoint gave its
// write function, once the link has written it and keeps no reference to
// it: the next ack reuses its memory instead of allocating (one frame per
// stream message received). Calling it is optional; frames that are not
// this Endpoint's acks are ignored.
func (e *Endpoint) RecycleAck(frame []byte) {
	if cap(frame) != ackFrameCap || !IsAck(frame) {
		return
	}
	e.mu.Lock()
	if len(e.ackFree) < maxAckFree {
		e.ackFree = append(e.ackFree, frame[:0])
	}
	e.mu.Unlock()
}

// IsAck reports whether frame is an acknowledge message (by its type field, §3).
func IsAck(frame []byte) bool {
	const t = ssmmsg.Acknowledge
	return len(frame) > 4+len(t) && string(frame[4:4+len(t)]) == t && frame[4+len(t)] == ' '
}

// retransmitLocked resends departed messages that are overdue. A message
// waits RTO (measured from its departure) before its first retransmission
// and twice as long before each next one on the same link (RFC 6298 §5.5's
// backoff, per message), so that a queue deeper than the RTO does not turn
// into a storm of spurious retransmissions. Retransmissions respect the
// queue budget; it also writes unsent messages a failed write left behind.
func (e *Endpoint) retransmitLocked() {
	if e.write == nil || e.paused || len(e.unacked) == 0 {
		return
	}
	now := e.cfg.Now()
	n := 0
	for _, p := range e.unacked[:e.next] {
		if p.state != departed || now.Sub(p.lastSent) <= min(e.rto<<min(p.tries, maxBackoffShift), maxRTO) {
			continue
		}
		if e.cfg.TrackDepartures && e.queued > 0 && e.queued+len(p.frame) > e.cfg.QueueBudget {
			break
		}
		p.tries++
		n++
		if !e.writeLocked(p, now) {
			break
		}
	}
	if n > 0 {
		e.cfg.Logger.Debug("reliable: retransmitted", "messages", n)
	}
	e.pumpLocked()
}

func (e *Endpoint) retransmitLoop() {
	defer close(e.done)
	t := time.NewTicker(e.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
		}
		e.mu.Lock()
		e.retransmitLocked()
		e.mu.Unlock()
	}
}

// Close stops the timer and wakes every blocked Send and WaitAcked. It is idempotent.
func (e *Endpoint) Close() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		<-e.done
		return
	}
	e.closed = true
	e.write = nil
	e.cond.Broadcast()
	e.mu.Unlock()
	close(e.stop)
	<-e.done
}
