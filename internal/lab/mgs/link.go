package mgs

import (
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/devgate/devgate/internal/lab/faults"
	"github.com/devgate/devgate/internal/ssmmsg"
)

var (
	errLinkClosed = errors.New("mgs: client WebSocket closed")
	errLinkFull   = errors.New("mgs: client WebSocket send queue full")
)

// outQueue is how many frames may wait for the writer. Writes never block
// (a reader that blocks on a write can deadlock both ends); a frame that
// does not fit is dropped and recovered by retransmission.
const outQueue = 16384

// A link is one client WebSocket of a session. Outgoing frames go through a
// writer goroutine that applies the bandwidth cap (the bottleneck: its queue
// is the agent's send queue), reordering and duplication, reports each frame's
// departure to the agent's reliability layer (sent), then the data-channel
// delay (the network, in a second goroutine when set); incoming frames go
// through a handler goroutine that applies the delay and the cap the other
// way. A session outlives its links.
type link struct {
	conn *websocket.Conn
	log  *slog.Logger
	f    faults.Config
	rnd  *rand.Rand // writer goroutine only
	rndR *rand.Rand // reader goroutine only

	out  chan outFrame
	in   chan inFrame
	done chan struct{}
	once sync.Once

	mu     sync.Mutex
	reason string

	onDrop func()       // counts fault drops
	sent   func([]byte) // told when a frame has left the agent (reliable.Endpoint.Departed)
	// gate, when set, blocks the writer while the session is frozen.
	gate func(done <-chan struct{})
}

type outFrame struct {
	b     []byte
	at    time.Time // when the modeled network delivers it (delay stage)
	close bool      // write a close frame 1000 and shut the socket
}

type inFrame struct {
	b  []byte
	at time.Time
}

func newLink(conn *websocket.Conn, f faults.Config, seed uint64, log *slog.Logger) *link {
	return &link{conn: conn, log: log, f: f, rnd: rand.New(rand.NewPCG(seed, 11)), rndR: rand.New(rand.NewPCG(seed, 13)),
		out: make(chan outFrame, outQueue), in: make(chan inFrame, 8192), done: make(chan struct{})}
}

// write queues a frame for the client without blocking. It fails once the
// link is dead or its queue is full; the reliability layer keeps the message
// and retransmits it.
func (l *link) write(b []byte) error {
	select {
	case <-l.done:
		return errLinkClosed
	default:
	}
	select {
	case l.out <- outFrame{b: b}:
		return nil
	default:
		return errLinkFull
	}
}

// closeAfterFlush writes what is queued, then a close frame 1000, then shuts the socket.
func (l *link) closeAfterFlush() {
	select {
	case l.out <- outFrame{close: true}:
	case <-l.done:
	}
}

// kill drops the socket abruptly (the client sees 1006).
func (l *link) kill(reason string) {
	l.once.Do(func() {
		l.mu.Lock()
		l.reason = reason
		l.mu.Unlock()
		close(l.done)
		l.conn.NetConn().Close()
	})
}

// bye closes the socket the way the real service does about hourly: close 1000 "Bye".
func (l *link) bye() {
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "Bye")
	_ = l.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	time.AfterFunc(2*time.Second, func() { l.kill("bye") })
}

// drop injects a fault drop in the configured mode.
func (l *link) drop() {
	if l.onDrop != nil {
		l.onDrop()
	}
	if l.f.DropMode == "bye" {
		l.log.Info("mgs: fault: closing client WebSocket with 1000 Bye")
		l.bye()
		return
	}
	l.log.Info("mgs: fault: dropping client WebSocket")
	l.kill("fault drop")
}

// shaper paces a byte stream at a rate with a small burst.
type shaper struct {
	rate float64 // bytes per second; 0: unlimited
	next time.Time
}

func (s *shaper) wait(n int) {
	if s.rate <= 0 {
		return
	}
	now := time.Now()
	if s.next.Before(now) {
		s.next = now
	}
	s.next = s.next.Add(time.Duration(float64(n) / s.rate * float64(time.Second)))
	if d := time.Until(s.next); d > 2*time.Millisecond {
		time.Sleep(d)
	}
}

func isOutputData(b []byte) bool {
	const t = ssmmsg.OutputStreamData
	return len(b) > 4+len(t) && string(b[4:4+len(t)]) == t
}

func sleepUntil(t time.Time) {
	if d := time.Until(t); d > 0 {
		time.Sleep(d)
	}
}

// writeLoop is the link's only writer of data frames: the bottleneck stage
// (shaper, reordering, duplication), then the delay stage.
func (l *link) writeLoop() {
	sh := shaper{rate: float64(l.f.BandwidthCap)}
	wire := l.writeFrame
	if l.f.DataDelay > 0 {
		delayed := make(chan outFrame, outQueue)
		done := make(chan struct{})
		defer func() { <-done }()
		defer close(delayed)
		go func() { defer close(done); l.delayLoop(delayed) }()
		wire = func(f outFrame) bool {
			f.at = time.Now().Add(l.f.DataDelay)
			select {
			case delayed <- f:
				return true
			case <-l.done:
				return false
			}
		}
	}
	var held []byte
	put := func(b []byte) bool {
		if l.gate != nil {
			l.gate(l.done)
		}
		sh.wait(len(b))
		if l.sent != nil {
			l.sent(b)
		}
		return wire(outFrame{b: b})
	}
	for {
		var f outFrame
		if held != nil {
			select {
			case f = <-l.out:
			case <-time.After(5 * time.Millisecond): // no successor came: let it go
				if !put(held) {
					return
				}
				held = nil
				continue
			case <-l.done:
				return
			}
		} else {
			select {
			case f = <-l.out:
			case <-l.done:
				return
			}
		}
		if f.close {
			if held != nil && !put(held) {
				return
			}
			wire(f)
			return
		}
		data := isOutputData(f.b)
		if data && held == nil && l.f.ReorderProb > 0 && l.rnd.Float64() < l.f.ReorderProb {
			held = f.b
			continue
		}
		if !put(f.b) {
			return
		}
		if data && l.f.DuplicateProb > 0 && l.rnd.Float64() < l.f.DuplicateProb && !put(f.b) {
			return
		}
		if held != nil {
			if !put(held) {
				return
			}
			held = nil
		}
	}
}

// delayLoop writes frames to the socket once the modeled delay has passed.
func (l *link) delayLoop(in <-chan outFrame) {
	for f := range in {
		sleepUntil(f.at)
		if !l.writeFrame(f) {
			for range in { // drain so the bottleneck stage never blocks
			}
			return
		}
	}
}

// writeFrame puts one frame (or the close) on the socket; false once the link is dead.
func (l *link) writeFrame(f outFrame) bool {
	if f.close {
		msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
		_ = l.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		l.kill("closed by the lab")
		return false
	}
	if err := l.conn.WriteMessage(websocket.BinaryMessage, f.b); err != nil {
		l.kill("write: " + err.Error())
		return false
	}
	return true
}
