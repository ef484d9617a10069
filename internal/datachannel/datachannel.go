// Package datachannel is the client side of one Session Manager data channel
// (protocol doc §2-§7): it dials the stream URL, sends OpenDataChannelInput,
// answers the agent's handshake, and then exposes the session as a stream
// (Read, Write, CloseWrite, Close) over internal/reliable's sequence numbers,
// acks, out-of-order buffer and retransmission.
//
// Unlike the official plugin it never loses data: writers block on a bounded
// window of unacked bytes, a message that could not be sent is kept for the
// next socket, and delivery is idempotent per sequence number. When the
// WebSocket drops or the service closes it, it calls ResumeSession (Config.Resume),
// redials the original stream URL and carries on, until Config.ResumeTimeout.
//
// At the agent's pace (one 1 KiB message about every millisecond, §8) the
// reader can hold a stream's output and acks for a few messages
// (Config.Coalesce, HoldThread): one output write and one ack write for
// several messages, flushed in step with the agent's sends.
//
// Shell-type sessions (Standard_Stream, InteractiveCommands,
// NonInteractiveCommands) add what shell.go and kms.go hold: a session the
// agent starts without a handshake, terminal size messages, StdErr and
// ExitCode payloads, and the KMS handshake with stream encryption (§4.4).
//
// It does not call StartSession or pick targets (internal/tunnel does), and
// does not speak smux (callers layer it on top).
package datachannel

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/reliable"
	"github.com/devgate/devgate/internal/ssmmsg"
)

// DefaultClientVersion is the 4-part ClientVersion devgate announces: above
// 1.1.70 (the agent picks mux for port forwarding) and above 1.2.331.0 (the
// agent turns its smux keepalive off), §6.1.
const DefaultClientVersion = "1.3.0.0"

// Config configures a Session.
type Config struct {
	StreamURL string
	SessionID string
	Token     string
	// ClientVersion is sent in OpenDataChannelInput and the handshake.
	ClientVersion string
	// Resume calls ResumeSession and returns the new token ("" when the
	// session ended). A *GoneError is a definitive answer (the session does
	// not exist): the session ends at once with its Err. Other errors are
	// retried until ResumeTimeout. Nil disables reconnecting.
	Resume func(ctx context.Context) (string, error)
	// Header, if set, returns extra headers for each WebSocket upgrade
	// (the SigV4 signature for service ssmmessages, §2.2).
	Header func(ctx context.Context, url string) (http.Header, error)
	// ResumeTimeout bounds one outage: give up when no socket could be
	// re-established within it (default 2 min).
	ResumeTimeout time.Duration
	// MaxPayload is the largest payload sent (default 1024, what the real
	// agent and service accept).
	MaxPayload int
	// Window bounds unacked bytes in flight (default reliable.DefaultWindow).
	Window int
	// ReadBuffer bounds received bytes not yet Read (default 8 MiB).
	ReadBuffer int
	// Liveness is how long a socket may stay silent (no frame and no pong)
	// before it is treated as dropped: closed, then ResumeSession and a
	// redial as for any drop. While nothing arrives for Liveness/4, a
	// WebSocket ping is sent so that a live service answers. Default
	// DefaultLiveness; negative disables the check.
	Liveness time.Duration
	// OnReconnect, if set, is told when a drop happened (err) and when it healed (nil).
	OnReconnect func(err error)
	Dialer      *websocket.Dialer
	// TLS and Proxy configure the default dialer (when Dialer is nil): the
	// roots and proxy of the AWS API calls, so that one trust and one proxy
	// serve both (nil: the system roots; http.ProxyFromEnvironment).
	TLS    *tls.Config
	Proxy  func(*http.Request) (*url.URL, error)
	Logger *slog.Logger

	// Shell accepts a session that starts without a handshake: Standard_Stream
	// and InteractiveCommands sessions without KMS, where the agent sends
	// Output at once (§4.1 step 2).
	Shell bool
	// KMS answers a KMSEncryption request (kms.go); nil refuses it.
	KMS KMSClient
	// TargetID is the session's target, part of the KMS encryption context (§4.4).
	TargetID string
	// OnPayload receives agent payloads other than Output, handshake and
	// flags, decrypted, in sequence order: StdErr and ExitCode (§3.2). It
	// must not block for long: it runs on the socket reader.
	OnPayload func(pt ssmmsg.PayloadType, payload []byte)
	// Coalesce, when positive, lets the socket's reader hold the output
	// and acks of a stream that arrives at the agent's pace for up to this
	// long (at most HoldMessages full messages), so that several messages
	// share one output write and one ack write; 0: every batch is written
	// and acked before the reader waits for the network (Session's doc).
	Coalesce time.Duration
	// HoldThread says the reader, holding a stream that arrives at the
	// agent's pace, sleeps on its thread keeping its P (rawio.Pause) until
	// just after the group's last message is due, and then takes what
	// arrived without waiting: one wake-up per group instead of one per
	// message. Only for a process that runs this one session on one P
	// (devgate connect).
	HoldThread bool
}

// ClosedError is how a session ends when the service sends channel_closed:
// Output is the service's text (often empty).
type ClosedError struct {
	SessionID string
	Output    string
}

func (e *ClosedError) Error() string {
	if e.Output == "" {
		return "session " + e.SessionID + " closed by the service"
	}
	return "session " + e.SessionID + " closed by the service: " + e.Output
}

// GoneError is what Config.Resume returns for a definitive answer of
// ResumeSession (the service says the session does not exist): asking again
// cannot succeed, so the session ends at once with Err (already classified).
type GoneError struct{ Err error }

func (e *GoneError) Error() string { return e.Err.Error() }
func (e *GoneError) Unwrap() error { return e.Err }

// ErrClosed is returned by Read and Write after Close.
var ErrClosed = errors.New("datachannel: session closed")

const pingInterval = 5 * time.Minute

// DefaultLiveness is Config.Liveness's default: a frozen service is
// detected in 20 s (pings every 5 s while the socket is quiet), well inside
// ssh's and the service's own timeouts.
const DefaultLiveness = 20 * time.Second

// ErrSilent is the cause of a drop found by the liveness check.
var ErrSilent = errors.New("datachannel: the service stopped answering (no data and no pong)")

// Session is one open data channel.
type Session struct {
	cfg      Config
	log      *slog.Logger
	ep       *reliable.Endpoint
	clientID string
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	hsReq  chan []byte
	hsDone chan ssmmsg.HandshakeComplete
	hsSkip chan struct{} // the agent sent Output without a handshake (Config.Shell)
	flags  chan ssmmsg.Flag
	kms    kmsState

	mu   sync.Mutex
	cond *sync.Cond
	// out holds the agent's output not yet Read (buffered bytes) in blocks
	// of outBlock bytes, from out[0][outOff:]; free holds emptied blocks
	// for reuse (at most freeBlocks).
	out      [][]byte
	outOff   int
	free     [][]byte
	buffered int
	// unread is set by the reader when it buffered output that Read (or
	// WriteTo) has not been woken for or that was not yet tried on sink
	// (flushReader, once per batch of frames).
	unread atomic.Bool
	// sink is WriteTo's destination when it can take bytes without waiting:
	// the reader writes output to it itself while nothing is buffered and
	// WriteTo is not writing (sinkBusy). sinkErr is its first write error;
	// sinkN counts the bytes written to it.
	sink     TryWriter
	sinkBusy bool
	sinkErr  error
	sinkN    int64
	ended    bool
	endErr   error // *ClosedError, a TunnelLost error, or ErrClosed
	done     chan struct{}
	conn     *wsConn
	closing  bool
	// outage is when the current outage began (zero: none): lost sockets
	// and silent redials until a socket is heard share its resume deadline.
	outage time.Time

	// holdN counts the full Output messages delivered since the reader
	// last wrote its output and acks, the first at holdSince; lastFull
	// says the last Output message was full (Config.Coalesce; reader
	// goroutine only).
	holdN     int
	holdSince time.Time
	lastFull  bool
	// holdSlow says the last group of held messages arrived at the
	// agent's pace (HoldThread sleeps only then); initially true.
	// holdSlept says the reader slept once in the current group.
	holdSlow, holdSlept bool
	// period is the agent's time per message as the reader sees it (a
	// moving average; 0: not known yet), measured between the first
	// messages of successive groups: prevStart, and prevN messages apart.
	period    time.Duration
	prevStart time.Time
	prevN     int
	// holds counts the reader's holds, of them its sleeps, and the holds
	// that ended with nothing read (HoldStats).
	holds, sleeps, emptyHolds atomic.Int64

	agentVersion    string
	sessionType     string
	properties      map[string]string
	customerMessage string
}

// Open dials the data channel and completes the handshake. The session is
// ready for Read and Write when it returns.
func Open(ctx context.Context, cfg Config) (*Session, error) {
	s := newSession(cfg)
	c, err := s.dial(ctx, cfg.Token)
	if err != nil {
		s.shutdown()
		return nil, exitcode.Wrap(err, exitcode.SessionRefused,
			"check that the network reaches the ssmmessages endpoint (proxy, VPC endpoint) and run `devgate doctor`",
			"could not open the Session Manager data channel")
	}
	s.attach(c)
	if err := s.handshake(ctx); err != nil {
		s.shutdown()
		return nil, err
	}
	return s, nil
}

// newSession builds a Session with no socket yet.
func newSession(cfg Config) *Session {
	if cfg.ClientVersion == "" {
		cfg.ClientVersion = DefaultClientVersion
	}
	if cfg.ResumeTimeout <= 0 {
		cfg.ResumeTimeout = 2 * time.Minute
	}
	if cfg.MaxPayload <= 0 {
		cfg.MaxPayload = ssmmsg.MaxPayload
	}
	if cfg.ReadBuffer <= 0 {
		cfg.ReadBuffer = 8 << 20
	}
	if cfg.Liveness == 0 {
		cfg.Liveness = DefaultLiveness
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	sctx, cancel := context.WithCancel(context.Background())
	s := &Session{cfg: cfg, log: cfg.Logger.With("session", cfg.SessionID), clientID: reliable.NewID().String(),
		ctx: sctx, cancel: cancel, hsReq: make(chan []byte, 1), hsDone: make(chan ssmmsg.HandshakeComplete, 1),
		hsSkip: make(chan struct{}, 1), flags: make(chan ssmmsg.Flag, 16), done: make(chan struct{}), holdSlow: true}
	s.cond = sync.NewCond(&s.mu)
	s.ep = reliable.New(reliable.Config{SendType: ssmmsg.InputStreamData, Window: cfg.Window,
		Deliver: s.deliver, Logger: s.log, TrackDepartures: true}) // wsConn.writeLoop reports departures
	return s
}

// handshake answers HandshakeRequest and waits for HandshakeComplete (§4).
func (s *Session) handshake(ctx context.Context) error {
	fail := func(err error) error {
		var ce *ClosedError
		if errors.As(err, &ce) {
			return exitcode.Wrap(err, exitcode.SessionRefused, "", "the session ended during the handshake")
		}
		return exitcode.Wrap(err, exitcode.SessionRefused, "", "Session Manager handshake failed")
	}
	var req []byte
	noHandshake := func() error {
		s.mu.Lock()
		s.sessionType = "shell (no handshake)"
		s.mu.Unlock()
		return nil
	}
	select {
	case req = <-s.hsReq:
	case <-s.hsSkip:
		return noHandshake()
	case <-s.done:
		// A shell that printed and exited at once (its output, then
		// channel_closed, both delivered before this look) opened.
		select {
		case <-s.hsSkip:
			return noHandshake()
		default:
		}
		return fail(s.Err())
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	hr, st, err := ssmmsg.ParseHandshakeRequest(req)
	if err != nil {
		return fail(err)
	}
	resp := ssmmsg.HandshakeResponse{ClientVersion: s.cfg.ClientVersion}
	for _, a := range hr.RequestedClientActions {
		pa := ssmmsg.ProcessedClientAction{ActionType: a.ActionType}
		switch a.ActionType {
		case ssmmsg.ActionSessionType:
			switch st.SessionType {
			case ssmmsg.SessionTypePort, ssmmsg.SessionTypeStandardStream, ssmmsg.SessionTypeInteractiveCommands,
				ssmmsg.SessionTypeNonInteractiveCommands:
				pa.ActionStatus = ssmmsg.ActionSuccess
			default:
				pa.ActionStatus = ssmmsg.ActionFailed
				pa.Error = "Failed to process action SessionType: Unknown session type " + st.SessionType
			}
		case ssmmsg.ActionKMSEncryption:
			var kerr error
			pa, kerr = s.kmsAction(ctx, a.ActionParameters)
			if kerr != nil {
				// Tell the agent (it ends the session), then fail with the cause.
				resp.ProcessedClientActions = append(resp.ProcessedClientActions, pa)
				if body, err := json.Marshal(resp); err == nil {
					_, _ = s.ep.Send(ctx, ssmmsg.PayloadHandshakeResponse, body)
				}
				return kerr
			}
		default:
			pa.ActionStatus = ssmmsg.ActionUnsupported
			pa.Error = "Unsupported action " + a.ActionType
		}
		resp.ProcessedClientActions = append(resp.ProcessedClientActions, pa)
	}
	s.mu.Lock()
	s.agentVersion = hr.AgentVersion
	if st != nil {
		s.sessionType = st.SessionType
		s.properties = map[string]string{}
		for k := range st.Properties {
			s.properties[k] = st.Property(k)
		}
	}
	s.mu.Unlock()
	body, err := json.Marshal(resp)
	if err != nil {
		return fail(err)
	}
	if _, err := s.ep.Send(ctx, ssmmsg.PayloadHandshakeResponse, body); err != nil {
		return fail(err)
	}
	return s.awaitHandshakeComplete(ctx, fail)
}

// awaitHandshakeComplete waits for HandshakeComplete. A session that
// completed its handshake and then ended (a target that sends its bytes
// and closes at once: channel_closed follows HandshakeComplete) opened:
// its output is read before the end. The reader may have delivered both
// before this goroutine looks, and select picks at random among ready
// cases, so the handshake is looked at again when the session has ended.
func (s *Session) awaitHandshakeComplete(ctx context.Context, fail func(error) error) error {
	complete := func(hc ssmmsg.HandshakeComplete) error {
		s.mu.Lock()
		s.customerMessage = hc.CustomerMessage
		s.mu.Unlock()
		return nil
	}
	select {
	case hc := <-s.hsDone:
		return complete(hc)
	case <-s.done:
		select {
		case hc := <-s.hsDone:
			return complete(hc)
		default:
		}
		return fail(s.Err())
	case <-ctx.Done():
		return fail(ctx.Err())
	}
}

// AgentVersion is the agent's version from the handshake.
func (s *Session) AgentVersion() string { s.mu.Lock(); defer s.mu.Unlock(); return s.agentVersion }

// SessionType is the handshake's session type ("Port" for devgate's documents).
func (s *Session) SessionType() string { s.mu.Lock(); defer s.mu.Unlock(); return s.sessionType }

// Property returns a handshake property ("portNumber", "type", ...).
func (s *Session) Property(k string) string { s.mu.Lock(); defer s.mu.Unlock(); return s.properties[k] }

// CustomerMessage is HandshakeComplete's message for the user ("" mostly).
func (s *Session) CustomerMessage() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.customerMessage
}

// Flags delivers flags the agent sent (ConnectToPortError in mux mode).
func (s *Session) Flags() <-chan ssmmsg.Flag { return s.flags }

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err is why the session ended: *ClosedError for channel_closed, a
// TunnelLost exitcode error, ErrClosed after Close; nil while it runs.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.endErr
}

// deliver takes the agent's stream messages in order (called by reliable).
func (s *Session) deliver(m *ssmmsg.Message) bool {
	switch m.PayloadType {
	case ssmmsg.PayloadHandshakeRequest:
		select {
		case s.hsReq <- append([]byte(nil), m.Payload...):
		default:
		}
	case ssmmsg.PayloadHandshakeComplete:
		var hc ssmmsg.HandshakeComplete
		if err := json.Unmarshal(m.Payload, &hc); err != nil {
			s.log.Warn("datachannel: malformed HandshakeComplete", "err", err)
		}
		select {
		case s.hsDone <- hc:
		default:
		}
	case ssmmsg.PayloadEncChallengeRequest:
		s.answerChallenge(m.Payload)
	case ssmmsg.PayloadOutput:
		if s.cfg.Shell {
			select {
			case s.hsSkip <- struct{}{}:
			default:
			}
		}
		payload, ok := s.decryptView(m)
		if !ok {
			return true
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.sinkErr != nil {
			return true // WriteTo's destination is gone: nobody reads it
		}
		for s.buffered >= s.cfg.ReadBuffer && !s.closing && !s.ended {
			// Backpressure: the reader stops reading the socket. What it
			// held (acks, Read's wake-up) goes on first.
			if c := s.conn; c != nil {
				c.flushAcks()
			}
			s.unread.Store(false)
			s.cond.Broadcast()
			s.cond.Wait()
		}
		if s.closing || s.ended || s.sinkErr != nil {
			return true
		}
		s.buffered += len(payload)
		full := len(payload) == ssmmsg.MaxPayload
		for len(payload) > 0 {
			if len(s.out) == 0 || len(s.out[len(s.out)-1]) == outBlock {
				var b []byte
				if n := len(s.free); n > 0 {
					b, s.free[n-1] = s.free[n-1], nil
					s.free = s.free[:n-1]
				} else {
					b = make([]byte, 0, outBlock)
				}
				s.out = append(s.out, b)
			}
			last := &s.out[len(s.out)-1]
			n := min(len(payload), outBlock-len(*last))
			*last = append(*last, payload[:n]...)
			payload = payload[n:]
		}
		s.unread.Store(true) // Read is woken, or sink written, by flushReader
		if s.lastFull = full; full {
			if s.holdN == 0 {
				s.startGroup(time.Now())
			}
			s.holdN++
		}
	case ssmmsg.PayloadFlag:
		f, err := ssmmsg.ParseFlag(m.Payload)
		if err != nil {
			s.log.Warn("datachannel: bad flag", "err", err)
			return true
		}
		if f == ssmmsg.FlagConnectToPortError {
			s.log.Warn("datachannel: the agent could not connect to the destination port")
		}
		select {
		case s.flags <- f:
		default:
		}
	default:
		if s.cfg.OnPayload != nil {
			if payload, ok := s.decrypt(m); ok {
				s.cfg.OnPayload(m.PayloadType, payload)
			}
			return true
		}
		s.log.Debug("datachannel: payload ignored", "type", m.PayloadType)
	}
	return true
}

// Read reads the agent's output. It returns io.EOF after channel_closed once
// everything before it was read, and the session's error otherwise.
func (s *Session) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.buffered == 0 && !s.ended {
		s.cond.Wait()
	}
	if s.buffered == 0 {
		var ce *ClosedError
		if errors.As(s.endErr, &ce) {
			return 0, io.EOF
		}
		return 0, s.endErr
	}
	return s.takeLocked(p), nil
}

// takeLocked moves up to len(p) buffered bytes into p.
func (s *Session) takeLocked(p []byte) int {
	n := 0
	for n < len(p) && s.buffered > 0 {
		c := copy(p[n:], s.out[0][s.outOff:])
		n += c
		s.consumeLocked(c)
	}
	s.cond.Broadcast() // the reader may wait for room
	return n
}

// consumeLocked drops the first n buffered bytes (n at most what is left
// of the first block), which were read or written.
func (s *Session) consumeLocked(n int) {
	s.outOff += n
	s.buffered -= n
	if s.outOff < len(s.out[0]) {
		return
	}
	// Block read: reuse it (the last one in place, an earlier one from free).
	s.outOff = 0
	if len(s.out) == 1 {
		s.out[0] = s.out[0][:0]
		return
	}
	if len(s.free) < freeBlocks {
		s.free = append(s.free, s.out[0][:0])
	}
	k := copy(s.out, s.out[1:]) // in place: no new slice as blocks come and go
	s.out[k] = nil
	s.out = s.out[:k]
}

// TryWriter is a destination that can take bytes without waiting
// (internal/stdpipe's File on a pipe or socket): TryWrite writes as much
// of p as fits at once (0 when full) and never blocks; Write blocks.
type TryWriter interface {
	io.Writer
	TryWrite(p []byte) (int, error)
}

// WriteTo writes the agent's output to w until the session ends (nil after
// channel_closed, once everything before it was written; the session's
// error otherwise) or a write to w fails (that error). It is instead of
// Read, not beside it.
//
// When w is a TryWriter, the socket's reader writes output to w itself,
// without waiting and without waking another goroutine, as soon as it has
// processed the frames already received: one goroutine per message at the
// agent's pace. What w does not take at once is buffered as for Read (the
// reader stops reading the socket at Config.ReadBuffer) and written by
// WriteTo's own goroutine, which blocks; bytes reach w in order either way.
// Acks are unchanged: a message is acked once buffered or written.
func (s *Session) WriteTo(w io.Writer) (int64, error) {
	buf := make([]byte, 32<<10)
	s.mu.Lock()
	defer s.mu.Unlock()
	if tw, ok := w.(TryWriter); ok {
		s.sink = tw
		defer func() { s.sink = nil }()
	}
	for {
		for s.buffered == 0 && !s.ended && s.sinkErr == nil {
			s.cond.Wait()
		}
		if s.sinkErr != nil {
			return s.sinkN, s.sinkErr
		}
		if s.buffered == 0 {
			var ce *ClosedError
			if errors.As(s.endErr, &ce) {
				return s.sinkN, nil
			}
			return s.sinkN, s.endErr
		}
		n := s.takeLocked(buf)
		s.sinkBusy = true
		s.mu.Unlock()
		m, err := w.Write(buf[:n])
		s.mu.Lock()
		s.sinkBusy = false
		s.sinkN += int64(m)
		if err == nil && m < n {
			err = io.ErrShortWrite
		}
		if err != nil && s.sinkErr == nil {
			s.sinkErr = err
		}
	}
}

// drainLocked writes buffered output to sink without waiting, until it is
// empty or sink takes no more (the reader goroutine, WriteTo not writing).
func (s *Session) drainLocked() {
	for s.buffered > 0 {
		b := s.out[0][s.outOff:]
		n, err := s.sink.TryWrite(b)
		s.sinkN += int64(n)
		if n > 0 {
			s.consumeLocked(n)
		}
		if err != nil {
			s.sinkErr = err
			return
		}
		if n < len(b) {
			return
		}
	}
}

// outBlock is the size of the blocks that hold output not yet Read: memory
// follows what is buffered, without the copies and doubling of one growing slice.
const outBlock = 64 << 10

// freeBlocks bounds the emptied output blocks kept for reuse (2 MiB, what
// OpenSSH's channel window keeps in flight): when ssh reads more slowly than
// the agent sends, output waits in several blocks, and without them every
// block emptied beyond the first was garbage (39 % of the bytes an unpaced
// download allocated, BENCHMARKS.md "Peak RSS"). An unpaced 64 MiB A/B: 4
// blocks 5.9 CPU ms/MiB and 34.3 MiB peak, 32 blocks 5.4 and 32.6 (medians of 5).
const freeBlocks = 32

// Write sends p as Output messages of at most MaxPayload bytes. It blocks
// while the window is full, including during a reconnect.
func (s *Session) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if err := s.Err(); err != nil {
			return n, err
		}
		end := min(n+s.cfg.MaxPayload, len(p))
		payload, err := s.encrypt(p[n:end])
		if err != nil {
			return n, err
		}
		if _, err := s.ep.Send(s.ctx, ssmmsg.PayloadOutput, payload); err != nil {
			if e := s.Err(); e != nil {
				return n, e
			}
			return n, err
		}
		n = end
	}
	return n, nil
}

// SendFlag sends a flag (DisconnectToPort, TerminateSession) as a stream message.
func (s *Session) SendFlag(f ssmmsg.Flag) error {
	_, err := s.ep.Send(s.ctx, ssmmsg.PayloadFlag, ssmmsg.FlagPayload(f))
	return err
}

// Flush waits until everything written has been acked by the agent.
func (s *Session) Flush(ctx context.Context) error {
	err := s.ep.WaitAcked(ctx)
	if errors.Is(err, reliable.ErrClosed) {
		if e := s.Err(); e != nil {
			return e
		}
	}
	return err
}

// CloseWrite ends the client's half: it waits until everything written was
// acked (the bytes reached the agent). The protocol has no half-close
// message, so the agent is not told; Read keeps working.
func (s *Session) CloseWrite(ctx context.Context) error { return s.Flush(ctx) }

// CloseWait bounds Close: how long it tries to send Flag TerminateSession
// and waits for the service's channel_closed. A window full of unacked data
// or a silent service cannot hold Close longer than this.
const CloseWait = 1500 * time.Millisecond

// Close ends the session: it sends Flag TerminateSession when the agent
// understands it (§6.5), waits at most CloseWait for channel_closed, and
// releases everything. The caller also calls the TerminateSession API.
func (s *Session) Close() error {
	s.mu.Lock()
	ended := s.ended
	s.mu.Unlock()
	if !ended && ssmmsg.ClientSendsTerminateFlag(s.AgentVersion()) {
		ctx, cancel := context.WithTimeout(s.ctx, CloseWait)
		if _, err := s.ep.Send(ctx, ssmmsg.PayloadFlag, ssmmsg.FlagPayload(ssmmsg.FlagTerminateSession)); err == nil {
			select {
			case <-s.done:
			case <-ctx.Done():
			}
		}
		cancel()
	}
	s.shutdown()
	return nil
}

func (s *Session) shutdown() {
	s.mu.Lock()
	s.closing = true
	c := s.conn
	s.cond.Broadcast()
	s.mu.Unlock()
	s.finish(ErrClosed)
	s.cancel()
	if c != nil {
		c.close()
	}
	s.ep.Close()
	s.wg.Wait()
}

// finish records why the session ended (first reason wins).
func (s *Session) finish(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	s.ended = true
	s.endErr = err
	close(s.done)
	s.cond.Broadcast()
}

func (s *Session) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing || s.ended
}

// wsConn is one WebSocket with its own writer goroutine. write never blocks:
// a reader that blocks on a write can deadlock both ends when both sockets
// are full. A frame that does not fit in the queue is dropped and recovered
// by retransmission (data) or by the peer's retransmission (acks).
//
// The writer takes every frame queued when it wakes and puts them on the
// socket with one write (batchConn). Acks, which only the reader writes,
// are not announced to the writer one by one: while the reader processes
// frames already received (inBatch), their acks wait in the queue and are
// handed on when it is about to wait for the network (flushAcks; for a
// stream held at the agent's pace, Config.Coalesce, when the hold ends), or
// after ackBatch frames, whichever comes first. A data frame wakes the
// writer at once and takes the waiting acks along.
type wsConn struct {
	ws   *websocket.Conn
	bc   *batchConn
	stop chan struct{}

	qmu     sync.Mutex
	queue   [][]byte      // frames for the writer, in order
	left    [][]byte      // frames the reader wrote that may not be on the socket yet (the writer flushes them)
	kick    chan struct{} // wakes the writer (capacity 1)
	inBatch atomic.Bool   // the reader is processing received frames: its acks wait
	held    int           // acks queued and not announced (reader goroutine only)
	// wmu makes one goroutine at a time write data messages (gorilla's
	// rule): the writer, or the reader when it sends its acks itself.
	wmu sync.Mutex
	rq  [][]byte // the reader's batch (reader goroutine only)
	// lastRecv is when a frame or a pong last arrived (unix ns).
	lastRecv atomic.Int64
	// silent is set when the liveness check closed the socket.
	silent atomic.Bool
	// heard is set by the first frame or pong from the service.
	heard atomic.Bool
	once  sync.Once
	sent  func([]byte) // told when a frame was written to the socket (Session.departed)
	// fbuf is where writeFrame builds a WebSocket frame (under wmu).
	fbuf []byte
}

// writeFrame writes p as one binary WebSocket message (a single masked
// frame, RFC 6455 §5.2: a client masks) to the connection under the
// WebSocket (TLS, or the batchConn), built in a buffer of its own instead of
// through gorilla's NextWriter (an allocation, a channel hand-off and a
// deadline call per frame, for every ack). Control frames (ping, close) still
// go through gorilla; each frame is one Write either way, and both the
// batchConn and tls.Conn take a Write whole, so frames never interleave.
// Callers hold wmu.
func (c *wsConn) writeFrame(p []byte) error {
	c.fbuf = appendClientFrame(c.fbuf[:0], websocket.BinaryMessage, p, mrand.Uint32())
	_, err := c.ws.NetConn().Write(c.fbuf)
	if cap(c.fbuf) > maxKeptFrame {
		c.fbuf = nil
	}
	return err
}

// appendClientFrame appends a final, masked WebSocket frame of opcode op
// and payload p, masked with key (RFC 6455 §5.2), to dst.
func appendClientFrame(dst []byte, op int, p []byte, key uint32) []byte {
	const fin, masked = 0x80, 0x80
	dst = append(dst, fin|byte(op))
	switch n := len(p); {
	case n <= 125:
		dst = append(dst, masked|byte(n))
	case n <= 0xffff:
		dst = append(dst, masked|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, masked|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	dst = binary.LittleEndian.AppendUint32(dst, key)
	start := len(dst)
	dst = append(dst, p...)
	b := dst[start:]
	k := uint64(key) | uint64(key)<<32 // byte i of the payload is XORed with byte i%4 of the key
	i := 0
	for ; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^k)
	}
	for ; i < len(b); i++ {
		b[i] ^= byte(key >> (8 * (i & 3)))
	}
	return dst
}

const sendQueue = 16384

// ackBatch bounds how many acks the reader holds before it hands them to
// the writer even while more frames are buffered: an ack is never later
// than the processing of ackBatch frames already received (well under a
// millisecond, far below the peer's RTO floor of SRTT + 10 ms, §5.1).
const ackBatch = 64

var errSendQueueFull = errors.New("datachannel: send queue full")

func newWSConn(ws *websocket.Conn, bc *batchConn, sent func([]byte)) *wsConn {
	c := &wsConn{ws: ws, bc: bc, stop: make(chan struct{}), kick: make(chan struct{}, 1), sent: sent}
	c.lastRecv.Store(time.Now().UnixNano())
	bc.start(c.wake)
	return c
}

// watch is the liveness check of one socket: while nothing arrives for
// d/4 it pings; after d of silence it closes the socket (the reader then
// resumes). It runs beside the writer, which a full socket can block.
func (c *wsConn) watch(d time.Duration) {
	tick := max(d/8, 10*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	lastPing := time.Time{}
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		quiet := time.Since(time.Unix(0, c.lastRecv.Load()))
		switch {
		case quiet >= d:
			c.silent.Store(true)
			c.close()
			return
		case quiet >= d/4 && time.Since(lastPing) >= d/4:
			lastPing = time.Now()
			_ = c.ws.WriteControl(websocket.PingMessage, []byte("keepalive"), time.Now().Add(d/4))
		}
	}
}

func (c *wsConn) write(b []byte) error {
	select {
	case <-c.stop:
		return errors.New("datachannel: socket closed")
	default:
	}
	c.qmu.Lock()
	if len(c.queue) >= sendQueue {
		c.qmu.Unlock()
		return errSendQueueFull
	}
	c.queue = append(c.queue, b)
	c.qmu.Unlock()
	if c.inBatch.Load() && isAck(b) {
		// Only the reader writes acks: it announces them (flushAcks).
		c.held++
		if c.held < ackBatch {
			return nil
		}
		c.held = 0
	}
	c.wake()
	return nil
}

// wake tells the writer that frames are queued.
func (c *wsConn) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// beginBatch is called by the reader when a frame has arrived: acks wait.
func (c *wsConn) beginBatch() { c.inBatch.Store(true) }

// flushAcks is called by the reader when it is about to wait for the
// network (or to block): the acks it held go on the socket. When the writer
// is idle the reader writes them itself, with whatever else is queued, in
// one system call that does not wait for the network (one goroutine hand-off
// less per message); what the socket does not take at once, and everything
// while the writer is busy, goes to the writer.
func (c *wsConn) flushAcks() {
	c.inBatch.Store(false)
	if c.held == 0 {
		return
	}
	c.held = 0
	if !c.wmu.TryLock() {
		c.wake() // the writer is busy: it takes them along
		return
	}
	c.qmu.Lock()
	batch := c.queue
	c.queue = c.rq[:0]
	c.qmu.Unlock()
	c.bc.Hold()
	var err error
	for _, b := range batch {
		if err = c.writeFrame(b); err != nil {
			break
		}
	}
	flushed, ferr := c.bc.tryRelease()
	c.wmu.Unlock()
	if err != nil || ferr != nil {
		c.close()
		return
	}
	if flushed {
		for i, b := range batch {
			c.sent(b)
			batch[i] = nil
		}
		c.rq = batch[:0]
		return
	}
	// The writer finishes the write, then reports the departures.
	c.qmu.Lock()
	c.left = append(c.left, batch...)
	c.qmu.Unlock()
	c.rq = nil
	c.wake()
}

func isAck(frame []byte) bool { return reliable.IsAck(frame) }

// departed is told of every frame a socket's writer put on the socket:
// stream messages' departures go to the Endpoint, acks back to its free list.
func (s *Session) departed(frame []byte) {
	if isAck(frame) {
		s.ep.RecycleAck(frame)
		return
	}
	s.ep.Departed(frame)
}

// writeLoop is the socket's only data writer; it also sends the plugin's
// "keepalive" ping at once and every 5 minutes (§2.3).
func (c *wsConn) writeLoop() {
	ping := func() {
		_ = c.ws.WriteControl(websocket.PingMessage, []byte("keepalive"), time.Now().Add(10*time.Second))
	}
	ping()
	t := time.NewTicker(pingInterval)
	defer t.Stop()
	var batch [][]byte
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			ping()
			continue
		case <-c.kick:
		}
		c.wmu.Lock()
		c.qmu.Lock()
		left := c.left
		c.left = nil
		batch, c.queue = c.queue, batch[:0]
		c.qmu.Unlock()
		if len(batch) == 0 && len(left) == 0 {
			err := c.bc.Flush() // what another goroutine's write left behind
			c.wmu.Unlock()
			if err != nil {
				c.close()
				return
			}
			continue
		}
		c.bc.Hold()
		for _, b := range batch {
			if err := c.writeFrame(b); err != nil {
				c.bc.Release()
				c.wmu.Unlock()
				c.close()
				return
			}
		}
		err := c.bc.Release() // also what the reader's write left behind
		c.wmu.Unlock()
		if err != nil {
			c.close()
			return
		}
		for _, b := range left {
			c.sent(b)
		}
		for i, b := range batch {
			c.sent(b)
			batch[i] = nil
		}
	}
}

// close shuts the socket without a close frame, as the official plugin does (§2.3).
func (c *wsConn) close() {
	c.once.Do(func() {
		close(c.stop)
		c.ws.NetConn().Close()
	})
}

// dial opens one WebSocket and sends OpenDataChannelInput and the keepalive ping.
func (s *Session) dial(ctx context.Context, token string) (*wsConn, error) {
	hdr := http.Header{}
	if s.cfg.Header != nil {
		h, err := s.cfg.Header(ctx, s.cfg.StreamURL)
		if err != nil {
			s.log.Warn("datachannel: could not sign the upgrade; sending it unsigned", "err", err)
		}
		for k, v := range h {
			hdr[k] = v
		}
	}
	d := s.cfg.Dialer
	if d == nil {
		d = &websocket.Dialer{Proxy: http.ProxyFromEnvironment, HandshakeTimeout: 45 * time.Second,
			ReadBufferSize: 64 << 10, WriteBufferSize: 16 << 10, TLSClientConfig: s.cfg.TLS}
		if s.cfg.Proxy != nil {
			d.Proxy = s.cfg.Proxy
		}
	}
	// The connection under the WebSocket (and TLS) is a batchConn: see wsConn.
	var bc *batchConn
	dd := *d
	netDial := d.NetDialContext
	if netDial == nil && d.NetDial != nil {
		netDial = func(_ context.Context, network, addr string) (net.Conn, error) { return d.NetDial(network, addr) }
	}
	if netDial == nil {
		var nd net.Dialer
		netDial = nd.DialContext
	}
	dd.NetDial = nil
	dd.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := netDial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		bc = newBatchConn(nc)
		return bc, nil
	}
	ws, resp, err := dd.DialContext(ctx, s.cfg.StreamURL, hdr)
	if err == nil && bc == nil {
		ws.Close()
		err = errors.New("datachannel: the dialer did not use NetDialContext")
	}
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("WebSocket upgrade refused: HTTP %s", resp.Status)
		}
		return nil, err
	}
	open, err := json.Marshal(ssmmsg.OpenDataChannelInput{MessageSchemaVersion: "1.0", RequestId: reliable.NewID().String(),
		TokenValue: token, ClientId: s.clientID, ClientVersion: s.cfg.ClientVersion})
	if err != nil {
		ws.Close()
		return nil, err
	}
	if err := ws.WriteMessage(websocket.TextMessage, open); err != nil {
		ws.Close()
		return nil, err
	}
	c := newWSConn(ws, bc, s.departed)
	s.wg.Add(1)
	go func() { defer s.wg.Done(); c.writeLoop() }()
	if s.cfg.Liveness > 0 {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); c.watch(s.cfg.Liveness) }()
	}
	return c, nil
}

// attach makes c the session's socket and starts reading it.
func (s *Session) attach(c *wsConn) {
	s.mu.Lock()
	s.conn = c
	s.mu.Unlock()
	c.ws.SetPongHandler(func(string) error {
		c.lastRecv.Store(time.Now().UnixNano())
		s.heard(c)
		return nil
	})
	c.bc.beforeRead = func() (time.Time, bool) { return s.beforeNetRead(c) }
	c.bc.emptyHolds = &s.emptyHolds
	s.ep.Attach(c.write)
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.readLoop(c) }()
}

// heard marks c as answered by the service (a frame or a pong); the first
// time after an outage, the outage is over.
func (s *Session) heard(c *wsConn) {
	if !c.heard.CompareAndSwap(false, true) {
		return
	}
	s.mu.Lock()
	was := s.outage
	s.outage = time.Time{}
	s.mu.Unlock()
	if !was.IsZero() {
		s.log.Info("datachannel: resumed", "outage", time.Since(was))
		if s.cfg.OnReconnect != nil {
			s.cfg.OnReconnect(nil)
		}
	}
}

// readLoop reads c until it fails, then reconnects or ends the session.
// One frame buffer and one Message are reused for every frame: nothing
// keeps a reference to a frame after handleFrame (payloads are copied).
func (s *Session) readLoop(c *wsConn) {
	var m ssmmsg.Message
	buf := make([]byte, 0, 2*ssmmsg.MaxPayload)
	for {
		mt, r, err := c.ws.NextReader()
		if err == nil {
			c.beginBatch()
			buf, err = readFrame(r, buf[:0])
		}
		if err != nil {
			c.close()
			if c.silent.Load() {
				err = fmt.Errorf("%w for %s", ErrSilent, s.cfg.Liveness)
			}
			s.flushReader(c)
			s.lost(c, err)
			return
		}
		c.lastRecv.Store(time.Now().UnixNano())
		s.heard(c)
		if mt != websocket.BinaryMessage {
			s.log.Debug("datachannel: non-binary frame dropped")
			continue
		}
		if s.handleFrame(&m, buf) {
			s.flushReader(c)
			c.close()
			return
		}
		if cap(buf) > maxKeptFrame {
			buf = make([]byte, 0, 2*ssmmsg.MaxPayload)
		}
	}
}

// maxKeptFrame bounds the frame buffer the reader keeps between frames.
const maxKeptFrame = 1 << 20

// readFrame reads one WebSocket message from r into buf (reused).
func readFrame(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// HoldMessages is how many full messages of a paced stream the reader
// holds at most before it writes their output and acks (Config.Coalesce).
const HoldMessages = 5

// DefaultCoalesce is the Config.Coalesce that devgate's sessions use: how
// long the reader holds a paced stream at most, from its first held
// message. At the agent's pace (one 1 KiB message about every 1.1–1.4 ms,
// §8) HoldMessages arrive within it, and the reader writes their output
// and acks when the last of them arrives: one ack write and one output
// write for five messages, in step with the agent's sends (BENCHMARKS.md,
// "Holding a paced stream"). Acks are at most this late, far below the
// agent's RTO floor (SRTT + 10 ms, §5.5).
const DefaultCoalesce = 8 * time.Millisecond

// sleepMargin is how long after the expected arrival of a group's last
// message a reader that holds its thread (Config.HoldThread) wakes.
const sleepMargin = 150 * time.Microsecond

// startGroup starts a group of held messages at now, the arrival of its
// first message, and takes a sample of the agent's period: the time since
// the previous group's first message over that group's messages.
func (s *Session) startGroup(now time.Time) {
	if s.prevN > 0 && !s.prevStart.IsZero() {
		// A stream that stopped between the groups, or a group cut short
		// by a short message, gives no sample.
		if d := now.Sub(s.prevStart) / time.Duration(s.prevN); d >= 900*time.Microsecond && d <= 3*time.Millisecond {
			if s.period == 0 {
				s.period = d
			} else {
				s.period += (d - s.period) / 4
			}
		}
	}
	s.holdSince, s.prevStart = now, now
}

// beforeNetRead is called on the reader goroutine when it has processed
// every frame received so far and is about to read the network
// (batchConn.Read). While a paced stream's messages gather it holds their
// output and acks: the last message was full (the agent's read filled its
// buffer, so its next read follows within about a millisecond, §8), fewer
// than HoldMessages are held, and the first arrived less than
// Config.Coalesce ago. It then returns when the hold ends at the latest,
// and the read waits for the network at most until then: the group is
// written when its last message arrives, in step with the agent's sends
// (as an ack per message would be), or at the bound when the stream
// stopped. With Config.HoldThread, once the agent's period is known and
// the stream arrives at its pace, the reader first sleeps until just after
// the group's last message is due (sleep true), then takes what came.
// Otherwise it writes what it holds (flushReader) and returns the zero time.
func (s *Session) beforeNetRead(c *wsConn) (until time.Time, sleep bool) {
	if s.cfg.Coalesce > 0 && s.lastFull && s.holdN > 0 {
		now := time.Now()
		if s.holdN < HoldMessages {
			if until := s.holdSince.Add(s.cfg.Coalesce); now.Before(until) {
				s.holds.Add(1)
				if s.cfg.HoldThread && s.holdSlow && !s.holdSlept && s.period > 0 {
					s.holdSlept = true
					due := s.holdSince.Add(time.Duration(HoldMessages-1)*s.period + sleepMargin)
					if now.Before(due) && due.Before(until) {
						s.sleeps.Add(1)
						return due, true
					}
				}
				return until, false
			}
		}
		// The group ends. At the agent's pace its messages came about a
		// millisecond apart; faster, the stream is not paced (a local
		// agent, the lab unpaced), and a sleeping reader would only let
		// the socket fill: the next groups wait in the poller, which
		// wakes as soon as data arrives.
		elapsed := float64(now.Sub(s.holdSince)) / float64(time.Millisecond)
		s.holdSlow = float64(s.holdN) <= pacedRate*elapsed+1
	}
	s.flushReader(c)
	return time.Time{}, false
}

// pacedRate is the fastest arrival, in messages per millisecond, that
// beforeNetRead still takes for the agent's pace: twice its one message
// per millisecond (§8).
const pacedRate = 2

// flushReader is called on the reader goroutine when it has processed every
// frame received so far and is about to wait for more (batchConn.Read), and
// before it blocks: the output it buffered is written to WriteTo's sink
// (as much as it takes without waiting) or Read (WriteTo) is woken for it,
// then the acks it queued go on the socket.
func (s *Session) flushReader(c *wsConn) {
	s.prevN, s.holdN, s.lastFull, s.holdSlept = s.holdN, 0, false, false
	if s.unread.Swap(false) {
		s.mu.Lock()
		if s.sink != nil && !s.sinkBusy && s.sinkErr == nil {
			s.drainLocked() // output first: someone may wait for it
		}
		if s.buffered > 0 || s.sinkErr != nil || s.sink == nil {
			s.cond.Broadcast()
		}
		s.mu.Unlock()
	}
	c.flushAcks()
}

// handleFrame processes one frame from the service into m (reused); it
// reports whether the session ended (channel_closed).
func (s *Session) handleFrame(m *ssmmsg.Message, data []byte) (ended bool) {
	err := ssmmsg.DecodeInto(m, data)
	if err != nil {
		// Neither acked nor delivered: the agent retransmits a good copy.
		s.log.Warn("datachannel: malformed frame dropped", "err", err)
		return false
	}
	other := s.ep.Receive(m)
	if other == nil {
		return false
	}
	switch other.Type {
	case ssmmsg.ChannelClosed:
		cc, err := ssmmsg.ParseChannelClosed(other)
		if err != nil {
			s.log.Warn("datachannel: channel_closed body unreadable", "err", err)
		}
		s.log.Info("datachannel: channel_closed", "output", cc.Output)
		s.finish(&ClosedError{SessionID: s.cfg.SessionID, Output: cc.Output})
		return true
	case ssmmsg.PausePublication:
		s.ep.SetPaused(true)
	case ssmmsg.StartPublication:
		s.ep.SetPaused(false)
	default:
		s.log.Debug("datachannel: message ignored", "type", other.Type)
	}
	return false
}

// lost handles the end of socket c: reconnect unless the session is over.
func (s *Session) lost(c *wsConn, cause error) {
	s.ep.Detach()
	if s.isClosing() {
		return
	}
	var ce *websocket.CloseError
	if errors.As(cause, &ce) && ce.Code == websocket.ClosePolicyViolation {
		s.finish(exitcode.Wrap(cause, exitcode.SessionRefused, "start a new session", "the service refused the data channel token"))
		return
	}
	s.log.Info("datachannel: WebSocket lost; resuming", "err", cause)
	// One outage lasts until a new socket hears from the service (healed):
	// a socket that connects but stays silent does not restart the clock.
	s.mu.Lock()
	first := s.outage.IsZero()
	if first {
		s.outage = time.Now()
	}
	start := s.outage
	s.mu.Unlock()
	if first && s.cfg.OnReconnect != nil {
		s.cfg.OnReconnect(cause)
	}
	if s.cfg.Resume == nil {
		s.finish(exitcode.Wrap(cause, exitcode.TunnelLost, "", "data channel lost"))
		return
	}
	ctx, cancel := context.WithDeadline(s.ctx, start.Add(s.cfg.ResumeTimeout))
	defer cancel()
	backoff := 100 * time.Millisecond
	var last error = cause
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil {
			if s.isClosing() {
				return
			}
			s.finish(exitcode.Wrap(last, exitcode.TunnelLost,
				"the network or the instance went away; run `devgate doctor <target>`",
				"data channel lost and not resumed within %s (%d attempts)", s.cfg.ResumeTimeout, attempt-1))
			return
		}
		nc, err := s.resumeOnce(ctx)
		if err == nil {
			s.log.Info("datachannel: redialed; waiting for the service", "attempt", attempt)
			s.attach(nc)
			return
		}
		var gone *GoneError
		if errors.As(err, &gone) {
			s.finish(gone.Err)
			return
		}
		var ended *ClosedError
		if errors.As(err, &ended) {
			s.finish(exitcode.Wrap(err, exitcode.TunnelLost, "start a new connection",
				"the session ended while the data channel was down"))
			return
		}
		last = err
		s.log.Info("datachannel: resume attempt failed", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

func (s *Session) resumeOnce(ctx context.Context) (*wsConn, error) {
	tok, err := s.cfg.Resume(ctx)
	if err != nil {
		return nil, fmt.Errorf("ResumeSession: %w", err)
	}
	if tok == "" {
		return nil, &ClosedError{SessionID: s.cfg.SessionID, Output: "ResumeSession returned no token: the session timed out or was terminated"}
	}
	return s.dial(ctx, tok)
}

// Stats returns the reliability counters of the client side.
func (s *Session) Stats() reliable.Stats { return s.ep.Stats() }

// HoldStats counts the times the reader held a paced stream instead of
// writing its output and acks before a network read (Config.Coalesce), of
// those the times it slept on its thread (HoldThread), and the holds that
// ended with nothing read (a stream that stopped); for tests and logs.
func (s *Session) HoldStats() (holds, sleeps, empty int64) {
	return s.holds.Load(), s.sleeps.Load(), s.emptyHolds.Load()
}
