// Package mgs is devgate-lab's Session Manager data channel: the service side
// of the WebSocket (MGS, protocol doc §2, §7) and the emulated SSM agent behind
// it (§4-§6, checklist §10): handshake, sequence numbers, acks and
// retransmission (through internal/reliable), SSH mode for
// AWS-StartSSHSession, basic and smux mux modes for port forwarding, channel_closed
// on every end, and all session state kept across client reconnects.
//
// It also injects the data-channel faults of internal/lab/faults (delay,
// bandwidth cap, the agent's pacing, drops, reordering, duplication,
// publication pauses). It does not implement the SSM API calls: package lab
// does, and calls Create, Resume and Terminate.
package mgs

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/devgate/devgate/internal/lab/faults"
	"github.com/devgate/devgate/internal/ssmmsg"
)

// ErrUnknownSession is returned for a session id the server never created.
var ErrUnknownSession = errors.New("mgs: unknown session")

// DefaultAgentVersion is what the emulated agent advertises: 4-part and above
// 3.1.1511.0, so clients pick mux with keepalive off (§6.1).
const DefaultAgentVersion = "3.3.1142.0"

// maxFrame bounds one incoming WebSocket message; the official client sends
// at most 120+1024 bytes.
const maxFrame = 64 << 10

// openTimeout bounds the wait for the OpenDataChannelInput text frame.
const openTimeout = 30 * time.Second

// Config configures a Server.
type Config struct {
	Faults *faults.Config // nil: no faults, no pacing
	Logger *slog.Logger
}

// SessionSpec describes one session created by StartSession.
type SessionSpec struct {
	SessionID    string
	Target       string
	Document     string
	SessionType  string            // "Port" (default) or a shell type with Shell set
	Properties   map[string]string // the document's substituted properties, sent in the handshake
	AgentVersion string
	// Dial connects the agent to host:port as seen from the instance.
	Dial func(ctx context.Context, host string, port int) (net.Conn, error)
	// Shell makes it a shell-type session (SessionType Standard_Stream,
	// InteractiveCommands or NonInteractiveCommands) run by shell.go.
	Shell *ShellSpec
}

// Server holds the lab's data-channel sessions.
type Server struct {
	cfg      Config
	f        faults.Config
	up       websocket.Upgrader
	seed     atomic.Uint64
	drops    atomic.Int64
	freezes  atomic.Int64
	mu       sync.Mutex
	sessions map[string]*session
	forgot   map[string]bool // sessions the service no longer knows (faults.ForgetOnDrop)

	cmu    sync.Mutex
	counts Counts
}

// New returns a Server.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, sessions: map[string]*session{}, forgot: map[string]bool{}}
	if cfg.Faults != nil {
		s.f = *cfg.Faults
	}
	if s.f.DropMode == "" {
		s.f.DropMode = "tcp"
	}
	s.seed.Store(uint64(s.f.Seed))
	s.up = websocket.Upgrader{
		ReadBufferSize: 16 << 10, WriteBufferSize: 16 << 10,
		// The client is not a browser; MGS does not check Origin.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return s
}

func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Create registers a session and returns its single-use token.
func (s *Server) Create(spec SessionSpec) (string, error) {
	if spec.SessionID == "" {
		return "", errors.New("mgs: empty session id")
	}
	if spec.AgentVersion == "" {
		spec.AgentVersion = DefaultAgentVersion
	}
	if spec.SessionType == "" {
		spec.SessionType = ssmmsg.SessionTypePort
	}
	tok, err := newToken()
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sessions[spec.SessionID]; ok {
		return "", errors.New("mgs: duplicate session id " + spec.SessionID)
	}
	s.sessions[spec.SessionID] = newSession(s, spec, tok)
	s.cmu.Lock()
	s.counts.Started++
	s.cmu.Unlock()
	return tok, nil
}

func (s *Server) get(id string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[id]
}

// Resume mints a fresh token; "" once the session ended (§7.4).
func (s *Server) Resume(sessionID string) (string, error) {
	ss := s.get(sessionID)
	s.mu.Lock()
	forgot := s.forgot[sessionID]
	s.mu.Unlock()
	if ss == nil || forgot {
		return "", ErrUnknownSession
	}
	return ss.resume()
}

// Terminate ends a session for a reason of the service's own: channel_closed
// with output, then the socket closes.
func (s *Server) Terminate(sessionID, output string) error {
	ss := s.get(sessionID)
	if ss == nil {
		return ErrUnknownSession
	}
	ss.end(output)
	return nil
}

// ClientTerminate ends a session because the client called the
// TerminateSession API. It is counted as a client terminate even when the
// session had already ended (the service answers success then too).
func (s *Server) ClientTerminate(sessionID string) error {
	ss := s.get(sessionID)
	if ss == nil {
		return ErrUnknownSession
	}
	ss.clientTerminated()
	ss.endBy(EndedByClientAPI, "")
	return nil
}

// EndReason is why a session ended, as the lab counts it.
type EndReason string

// The reasons a session ends (the first one counts).
const (
	EndedByClientFlag EndReason = "client-flag"  // the client sent Flag TerminateSession
	EndedByClientAPI  EndReason = "client-api"   // the client called TerminateSession
	EndedByTimeout    EndReason = "idle-timeout" // no input for faults.Config.IdleTimeout
	EndedByService    EndReason = "service"      // target closed, instance stopped, protocol error, shutdown
)

// Counts is the lab's tally of sessions. Each ended session counts once
// under the reason that ended it first; ClientTerminated counts the sessions
// whose client sent Flag TerminateSession or called the TerminateSession
// API at any time (in SSH mode sshd often closes first, and the agent ends
// the session before the client's terminate arrives).
type Counts struct {
	Started          int64
	ClientTerminated int64
	EndedByFlag      int64
	EndedByAPI       int64
	EndedByTimeout   int64
	EndedByService   int64
	Open             int64 // started and not ended
}

func (c Counts) String() string {
	return fmt.Sprintf("started %d, terminated by the client %d; ended by flag %d, by API %d, by idle timeout %d, by the service %d; open %d",
		c.Started, c.ClientTerminated, c.EndedByFlag, c.EndedByAPI, c.EndedByTimeout, c.EndedByService, c.Open)
}

// Counts returns the session tally so far.
func (s *Server) Counts() Counts {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	c := s.counts
	c.Open = c.Started - c.EndedByFlag - c.EndedByAPI - c.EndedByTimeout - c.EndedByService
	return c
}

func (s *Server) counted(why EndReason) {
	s.cmu.Lock()
	switch why {
	case EndedByClientFlag:
		s.counts.EndedByFlag++
	case EndedByClientAPI:
		s.counts.EndedByAPI++
	case EndedByTimeout:
		s.counts.EndedByTimeout++
	default:
		s.counts.EndedByService++
	}
	s.cmu.Unlock()
	s.logCounts()
}

func (s *Server) logCounts() {
	s.cfg.Logger.Info("mgs: sessions " + s.Counts().String())
}

// TerminateTarget ends every session of an instance (it stopped, or its agent went offline).
func (s *Server) TerminateTarget(instanceID, output string) {
	s.mu.Lock()
	var list []*session
	for _, ss := range s.sessions {
		if ss.spec.Target == instanceID {
			list = append(list, ss)
		}
	}
	s.mu.Unlock()
	for _, ss := range list {
		ss.end(output)
	}
}

// Active returns the ids of sessions that have not ended.
func (s *Server) Active() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id, ss := range s.sessions {
		if !ss.isEnded() {
			ids = append(ids, id)
		}
	}
	return ids
}

// ServeHTTP is the data-channel endpoint: /v1/data-channel/<session-id>.
// Authorization headers (the 1.3.0.0 plugin signs the upgrade) are accepted
// and ignored; the token in the first text frame is what counts (§2.2).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/v1/data-channel/")
	ss := s.get(id)
	if ss == nil || id == "" {
		s.cfg.Logger.Warn("mgs: WebSocket for an unknown session refused", "session", id)
		http.Error(w, "unknown session", http.StatusNotFound)
		return
	}
	conn, err := s.up.Upgrade(w, r, nil)
	if err != nil {
		s.cfg.Logger.Warn("mgs: upgrade failed", "session", id, "err", err)
		return
	}
	conn.SetReadLimit(maxFrame)
	// Pings are answered as gorilla's default handler does, except while
	// the session is frozen.
	conn.SetPingHandler(func(data string) error {
		ss.waitThaw(r.Context().Done())
		err := conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		var ne net.Error
		if errors.Is(err, websocket.ErrCloseSent) || errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		return err
	})
	ss.waitThaw(r.Context().Done()) // a frozen session serves no new WebSocket
	log := s.cfg.Logger.With("session", id, "remote", r.RemoteAddr)
	in, err := readOpen(conn)
	if err != nil {
		log.Warn("mgs: data channel refused", "err", err)
		refuse(conn, websocket.CloseUnsupportedData, err.Error())
		return
	}
	if err := ss.consumeToken(in.TokenValue); err != nil {
		log.Warn("mgs: data channel refused", "err", err)
		refuse(conn, websocket.ClosePolicyViolation, err.Error())
		return
	}
	l := newLink(conn, s.f, s.seed.Add(1), log)
	l.onDrop = func() {
		s.drops.Add(1)
		if s.f.ForgetOnDrop {
			s.mu.Lock()
			s.forgot[id] = true
			s.mu.Unlock()
		}
	}
	ss.serve(l, in.ClientVersion)
}

// readOpen reads the OpenDataChannelInput text frame; pings that come first
// are answered by the connection's default handler (§9 item 24).
func readOpen(conn *websocket.Conn) (ssmmsg.OpenDataChannelInput, error) {
	var in ssmmsg.OpenDataChannelInput
	_ = conn.SetReadDeadline(time.Now().Add(openTimeout))
	mt, data, err := conn.ReadMessage()
	if err != nil {
		return in, errors.New("no OpenDataChannelInput: " + err.Error())
	}
	_ = conn.SetReadDeadline(time.Time{})
	if mt != websocket.TextMessage {
		return in, errors.New("first frame is not the OpenDataChannelInput text frame")
	}
	if err := json.Unmarshal(data, &in); err != nil {
		return in, errors.New("OpenDataChannelInput is not JSON: " + err.Error())
	}
	return in, nil
}

func refuse(conn *websocket.Conn, code int, text string) {
	if len(text) > 120 {
		text = text[:120]
	}
	msg := websocket.FormatCloseMessage(code, text)
	_ = conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	conn.Close()
}

// Freeze freezes a session's data channel for d (see faults.Config.FreezeFor).
func (s *Server) Freeze(sessionID string, d time.Duration) error {
	ss := s.get(sessionID)
	if ss == nil {
		return ErrUnknownSession
	}
	ss.freeze(d)
	return nil
}

// Freezes returns how many freezes began (Freeze and the freeze fault).
func (s *Server) Freezes() int64 { return s.freezes.Load() }

// Drops returns how many client WebSockets the drop faults closed.
func (s *Server) Drops() int64 { return s.drops.Load() }

// Close ends all sessions.
func (s *Server) Close() error {
	s.mu.Lock()
	list := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		list = append(list, ss)
	}
	s.mu.Unlock()
	for _, ss := range list {
		ss.end("devgate-lab is shutting down")
	}
	for _, ss := range list {
		ss.wait()
	}
	return nil
}
