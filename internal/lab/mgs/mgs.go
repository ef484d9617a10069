// Package mgs is devgate-lab's Session Manager data channel (MGS relay) and emulated SSM agent.
//
// SKELETON ONLY: session bookkeeping and tokens (Create/Resume/Terminate) are real; the data
// channel itself (ServeHTTP: WebSocket, handshake, acks, port plugin, faults) is NOT implemented
// yet and answers 501 Not Implemented. It does not implement any SSM API calls (package lab does).
package mgs

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/devgate/devgate/internal/lab/faults"
)

// ErrUnknownSession is returned for a session id the server never created.
var ErrUnknownSession = errors.New("mgs: unknown session")

// Config configures a Server.
type Config struct {
	Faults *faults.Config
	Logger *slog.Logger
}

// SessionSpec describes one session created by StartSession.
type SessionSpec struct {
	SessionID    string
	Target       string
	Document     string
	SessionType  string
	Properties   map[string]string
	AgentVersion string
	Dial         func(ctx context.Context, host string, port int) (net.Conn, error)
}

type session struct {
	spec  SessionSpec
	token string
	ended bool
}

// Server holds the lab's data-channel sessions.
type Server struct {
	cfg      Config
	mu       sync.Mutex
	sessions map[string]*session
}

// New returns a Server.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Server{cfg: cfg, sessions: map[string]*session{}}
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
		spec.AgentVersion = "3.3.1142.0"
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
	s.sessions[spec.SessionID] = &session{spec: spec, token: tok}
	return tok, nil
}

// Resume mints a fresh token; "" once the session ended.
func (s *Server) Resume(sessionID string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.sessions[sessionID]
	if !ok {
		return "", ErrUnknownSession
	}
	if ss.ended {
		return "", nil
	}
	tok, err := newToken()
	if err != nil {
		return "", err
	}
	ss.token = tok
	return tok, nil
}

// Terminate ends a session.
func (s *Server) Terminate(sessionID, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.sessions[sessionID]
	if !ok {
		return ErrUnknownSession
	}
	ss.ended = true
	s.cfg.Logger.Info("mgs: session terminated", "session", sessionID, "reason", reason)
	return nil
}

// TerminateTarget ends every session of an instance.
func (s *Server) TerminateTarget(instanceID, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, ss := range s.sessions {
		if ss.spec.Target == instanceID && !ss.ended {
			ss.ended = true
			s.cfg.Logger.Info("mgs: session terminated", "session", id, "reason", reason)
		}
	}
}

// ServeHTTP is the data-channel endpoint. NOT IMPLEMENTED YET: answers 501.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.cfg.Logger.Warn("mgs: data channel not implemented", "path", r.URL.Path)
	http.Error(w, "data channel not implemented in this lab build", http.StatusNotImplemented)
}

// Close ends all sessions.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range s.sessions {
		ss.ended = true
	}
	return nil
}
