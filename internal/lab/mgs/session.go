package mgs

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/devgate/devgate/internal/reliable"
	"github.com/devgate/devgate/internal/ssmmsg"
)

// handshakeTimeout is how long the agent waits for HandshakeResponse (§4.1).
const handshakeTimeout = 15 * time.Second

// drainTimeout bounds the wait for the client to ack the last output before
// channel_closed after the target ended.
const drainTimeout = 30 * time.Second

// plugin is the agent's session plugin: what Output payloads from the client
// mean and where the agent's output comes from.
type plugin interface {
	// input takes the client's Output payload in order; false means "not
	// ready" (no ack, the client retransmits).
	input(p []byte) bool
	// disconnect handles Flag DisconnectToPort.
	disconnect()
	// close stops the plugin and closes its connections.
	close()
}

// session is one data-channel session: the agent's state, which outlives
// client WebSockets.
type session struct {
	srv  *Server
	spec SessionSpec
	log  *slog.Logger
	ep   *reliable.Endpoint

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu            sync.Mutex
	token         string // "" once used
	ended         bool
	link          *link
	started       bool
	clientVersion string // from the HandshakeResponse (§4.3)
	plug          plugin
	hsResponse    *ssmmsg.HandshakeResponse

	hsAcked  chan ssmmsg.HandshakeResponse
	complete atomic.Bool
	// thaw is closed when a freeze ends; nil while not frozen (guarded by fmu).
	fmu  sync.Mutex
	thaw chan struct{}
	// terminated: the client sent Flag TerminateSession or called the API.
	terminated atomic.Bool
	// lastInput is when the client last sent a stream message (unix ns): the idle timeout's clock.
	lastInput atomic.Int64

	cipher *ssmmsg.StreamCipher // KMS sessions, after the data key was decrypted (mu)
	chResp chan []byte          // EncChallengeResponse payloads
}

func (s *session) streamCipher() *ssmmsg.StreamCipher {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cipher
}

func newSession(srv *Server, spec SessionSpec, token string) *session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{srv: srv, spec: spec, token: token, ctx: ctx, cancel: cancel,
		log: srv.cfg.Logger.With("session", spec.SessionID), hsAcked: make(chan ssmmsg.HandshakeResponse, 1),
		chResp: make(chan []byte, 1)}
	s.ep = reliable.New(reliable.Config{
		SendType:        ssmmsg.OutputStreamData,
		Deliver:         s.deliver,
		Acked:           s.acked,
		Logger:          s.log,
		TrackDepartures: true, // the link reports departures (link.sent)
	})
	s.ep.SetPaused(true) // no client attached yet
	s.lastInput.Store(time.Now().UnixNano())
	if d := srv.f.IdleTimeout; d > 0 {
		go s.idleLoop(d)
	}
	return s
}

// freeze stops the session's data channel for d without closing it: its
// client WebSockets are neither read (no acks, no pongs) nor written, and a
// new WebSocket for it is not served until the freeze ends — a service
// that hangs (as under SIGSTOP) while the TCP connections stay up.
func (s *session) freeze(d time.Duration) {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if s.thaw != nil {
		return
	}
	s.srv.freezes.Add(1)
	s.log.Info("mgs: fault: data channel frozen", "for", d)
	thaw := make(chan struct{})
	s.thaw = thaw
	time.AfterFunc(d, func() {
		s.fmu.Lock()
		s.thaw = nil
		s.fmu.Unlock()
		close(thaw)
		s.log.Info("mgs: fault: data channel thawed")
	})
}

// waitThaw blocks while the session is frozen, until the freeze ends or
// done is closed.
func (s *session) waitThaw(done <-chan struct{}) {
	s.fmu.Lock()
	thaw := s.thaw
	s.fmu.Unlock()
	if thaw == nil {
		return
	}
	select {
	case <-thaw:
	case <-done:
	case <-s.ctx.Done():
	}
}

// clientTerminated counts the client's terminate (flag or API) once per session.
func (s *session) clientTerminated() {
	if s.terminated.CompareAndSwap(false, true) {
		s.srv.cmu.Lock()
		s.srv.counts.ClientTerminated++
		s.srv.cmu.Unlock()
		// A terminate after the session ended (the service ended it first) changes
		// the tally too: log it, so that the log's last tally is the current one.
		s.srv.logCounts()
	}
}

// idleLoop ends the session when the client sent no stream message for d:
// Session Manager's idle session timeout (default 20 minutes; the
// Session Manager preferences' idleSessionTimeout). A client that vanished
// without terminating its session is ended this way, and counted so.
func (s *session) idleLoop(d time.Duration) {
	tick := min(max(d/10, 50*time.Millisecond), 30*time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		if time.Since(time.Unix(0, s.lastInput.Load())) >= d {
			s.endBy(EndedByTimeout, "Session timed out: no input for "+d.String())
			return
		}
	}
}

func (s *session) isEnded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

func (s *session) resume() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return "", nil
	}
	tok, err := newToken()
	if err != nil {
		return "", err
	}
	s.token = tok
	if sp, ok := s.plug.(*shellPlugin); ok {
		sp.touch() // ResumeSession resets the idle timer (§7.4)
	}
	return tok, nil
}

// consumeToken checks a token and makes it unusable (tokens are single-use).
func (s *session) consumeToken(tok string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return errors.New("session already ended")
	}
	if s.token == "" || tok == "" || subtle.ConstantTimeCompare([]byte(s.token), []byte(tok)) != 1 {
		return errors.New("invalid or already used token")
	}
	s.token = ""
	return nil
}

// serve attaches l as the session's client link and processes its frames
// until it dies. A newer link replaces an older one.
func (s *session) serve(l *link, openVersion string) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		l.kill("session ended")
		return
	}
	l.gate = s.waitThaw
	old := s.link
	s.link = l
	first := !s.started
	if first {
		s.started = true
	}
	s.mu.Unlock()
	if old != nil {
		old.kill("replaced by a new WebSocket")
	}
	// openVersion is OpenDataChannelInput's ClientVersion: logged only; the
	// agent never sees it (MGS consumes that frame) and reads the version
	// from the HandshakeResponse (§4.3).
	s.log.Info("mgs: client attached", "openClientVersion", openVersion, "first", first)

	l.sent = s.ep.Departed
	var lw sync.WaitGroup
	lw.Add(2)
	go func() { defer lw.Done(); l.writeLoop() }()
	go func() { defer lw.Done(); s.handleLoop(l) }()
	s.ep.Attach(l.write)
	s.ep.SetPaused(false)
	if first {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.run() }()
	}
	stopFaults := s.startLinkFaults(l)

	s.readLoop(l)

	stopFaults()
	close(l.in)
	lw.Wait()
	s.mu.Lock()
	if s.link == l {
		s.link = nil
		s.ep.Detach()
		s.ep.SetPaused(true) // the agent stops reading its targets while no client is attached
	}
	s.mu.Unlock()
	s.log.Info("mgs: client detached", "why", l.reason)
}

// startLinkFaults arms the drop and pause faults for one link.
func (s *session) startLinkFaults(l *link) (stop func()) {
	f := s.srv.f
	var timers []*time.Timer
	if f.DropEvery > 0 {
		timers = append(timers, time.AfterFunc(f.DropEvery, l.drop))
	}
	if f.FreezeEvery > 0 && f.FreezeFor > 0 {
		timers = append(timers, time.AfterFunc(f.FreezeEvery, func() { s.freeze(f.FreezeFor) }))
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	if f.PauseEvery > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(f.PauseEvery)
			defer t.Stop()
			for {
				select {
				case <-quit:
					return
				case <-l.done:
					return
				case <-t.C:
				}
				s.sendService(l, ssmmsg.PausePublication)
				select {
				case <-quit:
					return
				case <-l.done:
					return
				case <-time.After(f.PauseFor):
				}
				s.sendService(l, ssmmsg.StartPublication)
			}
		}()
	}
	return func() {
		for _, t := range timers {
			t.Stop()
		}
		close(quit)
		wg.Wait()
	}
}

// sendService sends a service message (seq 0, no payload type) on l.
func (s *session) sendService(l *link, typ string) {
	m := ssmmsg.Message{Type: typ, SchemaVersion: ssmmsg.SchemaVersion,
		CreatedDate: uint64(time.Now().UnixMilli()), MessageID: reliable.NewID()}
	b, err := m.Encode()
	if err == nil {
		_ = l.write(b)
	}
}

// readLoop reads frames from l and queues them for handleLoop.
func (s *session) readLoop(l *link) {
	for {
		mt, data, err := l.conn.ReadMessage()
		s.waitThaw(l.done)
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				s.protocolError(fmt.Errorf("frame larger than %d bytes", maxFrame))
			}
			l.kill("read: " + err.Error())
			return
		}
		if mt != websocket.BinaryMessage {
			s.protocolError(errors.New("text frame after OpenDataChannelInput"))
			return
		}
		l.in <- inFrame{b: data, at: time.Now().Add(s.srv.f.DataDelay)}
		if p := s.srv.f.DropProb; p > 0 && l.rndR.Float64() < p {
			l.drop()
		}
	}
}

// handleLoop processes queued frames in order, after the modeled delay.
// Frames that arrived before a drop are still processed (§10 item 5).
func (s *session) handleLoop(l *link) {
	sh := shaper{rate: float64(s.srv.f.BandwidthCap)}
	for f := range l.in {
		sleepUntil(f.at)
		sh.wait(len(f.b))
		if err := s.handleFrame(f.b); err != nil {
			s.protocolError(err)
			for range l.in { // drain so readLoop never blocks
			}
			return
		}
	}
}

// handleFrame decodes and dispatches one frame from the client.
func (s *session) handleFrame(b []byte) error {
	m, err := ssmmsg.Decode(b)
	if err != nil {
		return err
	}
	if o := s.ep.Receive(m); o != nil {
		s.log.Debug("mgs: message from the client ignored", "type", o.Type)
	}
	return nil
}

// protocolError ends this session only, telling the client why.
func (s *session) protocolError(err error) {
	s.log.Warn("mgs: protocol error from the client; ending this session", "err", err)
	s.end("devgate-lab: protocol error: " + err.Error())
}

// deliver is the agent's handling of the client's stream messages, in order.
func (s *session) deliver(m *ssmmsg.Message) bool {
	s.lastInput.Store(time.Now().UnixNano())
	switch m.PayloadType {
	case ssmmsg.PayloadHandshakeResponse:
		var r ssmmsg.HandshakeResponse
		if err := json.Unmarshal(m.Payload, &r); err != nil {
			go s.end("devgate-lab: malformed HandshakeResponse: " + err.Error())
			return true
		}
		s.mu.Lock()
		s.hsResponse = &r
		s.mu.Unlock()
		return true
	case ssmmsg.PayloadEncChallengeResponse:
		select {
		case s.chResp <- append([]byte(nil), m.Payload...):
		default:
		}
		return true
	case ssmmsg.PayloadSize:
		sz, err := ssmmsg.ParseSize(m.Payload)
		if err != nil {
			s.log.Warn("mgs: bad size message ignored", "err", err)
			return true
		}
		s.mu.Lock()
		sp, _ := s.plug.(*shellPlugin)
		s.mu.Unlock()
		if sp != nil {
			sp.resize(sz)
		}
		return true
	case ssmmsg.PayloadOutput:
		if !s.complete.Load() {
			s.log.Debug("mgs: data before the handshake completed: acked and discarded", "seq", m.SequenceNumber)
			return true
		}
		s.mu.Lock()
		p := s.plug
		c := s.cipher
		s.mu.Unlock()
		if p == nil {
			return false
		}
		payload := m.Payload
		if c != nil {
			var err error
			if payload, err = c.Open(m.Payload); err != nil {
				go s.end("devgate-lab: an encrypted payload from the client did not decrypt: " + err.Error())
				return true
			}
		}
		return p.input(payload)
	case ssmmsg.PayloadFlag:
		f, err := ssmmsg.ParseFlag(m.Payload)
		if err != nil {
			s.log.Warn("mgs: bad flag ignored", "err", err)
			return true
		}
		switch f {
		case ssmmsg.FlagTerminateSession:
			s.log.Info("mgs: client sent TerminateSession")
			s.clientTerminated()
			go s.endBy(EndedByClientFlag, "")
		case ssmmsg.FlagDisconnectToPort:
			s.mu.Lock()
			p := s.plug
			s.mu.Unlock()
			if p != nil {
				p.disconnect()
			}
		}
		return true
	default:
		return true
	}
}

// acked runs after the ack of a delivered message was written; the handshake
// goes on only then (ack HandshakeResponse before HandshakeComplete, §9 item 26).
func (s *session) acked(m *ssmmsg.Message) {
	if m.PayloadType != ssmmsg.PayloadHandshakeResponse {
		return
	}
	s.mu.Lock()
	r := s.hsResponse
	s.mu.Unlock()
	if r != nil {
		select {
		case s.hsAcked <- *r:
		default:
		}
	}
}

// run is the agent: handshake, then the session's plugin.
func (s *session) run() {
	start := time.Now()
	sh := s.spec.Shell
	if sh != nil && sh.KMSKeyID == "" && interactive(s.spec.SessionType) {
		// Standard_Stream and InteractiveCommands handshake only with KMS; the
		// agent calls SkipHandshake and sends output at once (§4.1 step 2).
		p, err := s.startShell()
		if err != nil {
			s.end(err.Error())
			return
		}
		s.mu.Lock()
		s.plug = p
		s.mu.Unlock()
		s.complete.Store(true)
		s.log.Info("mgs: shell session started without a handshake")
		return
	}
	props := map[string]any{}
	for k, v := range s.spec.Properties {
		props[k] = v
	}
	if sh != nil && sh.HandshakeProperties != nil {
		props = sh.HandshakeProperties
	}
	params, _ := json.Marshal(ssmmsg.SessionTypeRequest{SessionType: s.spec.SessionType, Properties: props})
	actions := []ssmmsg.RequestedClientAction{{ActionType: ssmmsg.ActionSessionType, ActionParameters: params}}
	if sh != nil && sh.KMSKeyID != "" {
		kp, _ := json.Marshal(ssmmsg.KMSEncryptionRequest{KMSKeyID: sh.KMSKeyID})
		actions = append(actions, ssmmsg.RequestedClientAction{ActionType: ssmmsg.ActionKMSEncryption, ActionParameters: kp})
	}
	req, _ := json.Marshal(ssmmsg.HandshakeRequest{AgentVersion: s.spec.AgentVersion, RequestedClientActions: actions})
	if _, err := s.ep.Send(s.ctx, ssmmsg.PayloadHandshakeRequest, req); err != nil {
		return
	}
	var resp ssmmsg.HandshakeResponse
	select {
	case resp = <-s.hsAcked:
	case <-time.After(handshakeTimeout):
		s.end("Handshake timed out. Please ensure that you have the latest version of the session manager plugin.")
		return
	case <-s.ctx.Done():
		return
	}
	// The real agent treats any action whose status is not Success as fatal
	// (datachannel.go handleHandshakeResponse, §4.2), not only SessionType.
	ok := false
	for _, a := range resp.ProcessedClientActions {
		if a.ActionStatus != ssmmsg.ActionSuccess {
			s.end(fmt.Sprintf("%s failed on client with status %d error: %s", a.ActionType, a.ActionStatus, a.Error))
			return
		}
		if a.ActionType == ssmmsg.ActionSessionType {
			ok = true
		}
	}
	if !ok {
		s.end("SessionType was not processed by the client")
		return
	}
	// The agent learns the client's version from the HandshakeResponse, not
	// from OpenDataChannelInput (agent datachannel.go handleHandshakeResponse
	// stores ClientVersion; §4.3). Plugins older than 1.2.650.0 send it only
	// here, and an OpenDataChannelInput value never overrides it.
	cv := resp.ClientVersion
	s.mu.Lock()
	s.clientVersion = cv
	s.mu.Unlock()
	customer := ""
	if sh != nil && sh.KMSKeyID != "" {
		if err := s.kmsHandshake(resp); err != nil {
			s.end(err.Error())
			return
		}
		customer = "This session is encrypted using AWS KMS."
	}
	var p plugin
	var err error
	if sh != nil {
		p, err = s.startShell()
	} else {
		p, err = s.startPlugin(cv)
	}
	if err != nil {
		s.end(err.Error())
		return
	}
	s.mu.Lock()
	s.plug = p
	s.mu.Unlock()
	// Mark complete before HandshakeComplete goes out: the client's first data
	// can arrive within microseconds (§4.1).
	s.complete.Store(true)
	done, _ := json.Marshal(ssmmsg.HandshakeComplete{HandshakeTimeToComplete: time.Since(start).Nanoseconds(), CustomerMessage: customer})
	if _, err := s.ep.Send(s.ctx, ssmmsg.PayloadHandshakeComplete, done); err != nil {
		return
	}
	s.log.Info("mgs: handshake complete", "clientVersion", cv, "properties", s.spec.Properties)
}

// end ends the session once for a reason of the service's own (the target
// ended, a protocol error, the lab shutting down).
func (s *session) end(output string) { s.endBy(EndedByService, output) }

// endBy ends the session once: the plugin stops, the client gets
// channel_closed with output, and its socket closes. The first reason is
// the one counted.
func (s *session) endBy(why EndReason, output string) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended = true
	s.token = ""
	l := s.link
	p := s.plug
	s.mu.Unlock()
	s.srv.counted(why)
	st := s.ep.Stats()
	s.log.Info("mgs: session ended", "by", string(why), "output", output, "sent", st.Sent,
		"retransmitted", st.Retransmitted, "received", st.Received, "duplicates", st.Duplicates) // bench/storm.sh reads the counters
	s.cancel()
	if p != nil {
		p.close()
	}
	if l != nil {
		body, err := ssmmsg.NewChannelClosedPayload(reliable.NewID(), uint64(time.Now().UnixMilli()),
			s.spec.SessionID, s.spec.Target, output)
		if err == nil {
			m := ssmmsg.Message{Type: ssmmsg.ChannelClosed, SchemaVersion: ssmmsg.SchemaVersion,
				CreatedDate: uint64(time.Now().UnixMilli()), MessageID: reliable.NewID(), Payload: body}
			if b, err := m.Encode(); err == nil {
				_ = l.write(b)
			}
		}
		l.closeAfterFlush()
	}
	s.ep.Close()
}

// endAfterDrain waits (bounded) until the client acked all output, then ends.
func (s *session) endAfterDrain(output string) { s.endByAfterDrain(EndedByService, output) }

// endByAfterDrain is endAfterDrain with the reason the lab counts.
func (s *session) endByAfterDrain(why EndReason, output string) {
	ctx, cancel := context.WithTimeout(s.ctx, drainTimeout)
	defer cancel()
	_ = s.ep.WaitAcked(ctx)
	s.endBy(why, output)
}

func (s *session) wait() { s.wg.Wait() }
