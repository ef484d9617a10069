package datachannel

import (
	"context"
	"errors"
	"testing"

	"github.com/devgate/devgate/internal/ssmmsg"
)

// A session whose HandshakeComplete and channel_closed were both delivered
// before Open looked (a target that writes and closes at once) opened: its
// output is read before the end. Select picks at random among ready cases,
// so one look at a time would fail about half the time: 200 tries.
func TestHandshakeCompleteThenClosedOpens(t *testing.T) {
	fail := func(err error) error { return err }
	for i := range 200 {
		s := newSession(Config{SessionID: "s"})
		s.hsDone <- ssmmsg.HandshakeComplete{CustomerMessage: "hello"}
		s.finish(&ClosedError{SessionID: "s"})
		if err := s.awaitHandshakeComplete(context.Background(), fail); err != nil {
			t.Fatalf("try %d: HandshakeComplete then channel_closed: %v, want the session open", i, err)
		}
		if s.customerMessage != "hello" {
			t.Fatalf("customer message %q, want %q", s.customerMessage, "hello")
		}
		s.shutdown()
	}
	// Ended without a HandshakeComplete: the session's end is the error.
	s := newSession(Config{SessionID: "s"})
	defer s.shutdown()
	s.finish(&ClosedError{SessionID: "s"})
	var ce *ClosedError
	if err := s.awaitHandshakeComplete(context.Background(), fail); !errors.As(err, &ce) {
		t.Fatalf("ended during the handshake: %v, want the ClosedError", err)
	}
}

// The same for a shell session, which has no handshake: its first output
// and channel_closed both delivered before Open looked (`devgate exec` of a
// command that prints and exits at once) is a session that opened.
func TestShellOutputThenClosedOpens(t *testing.T) {
	for i := range 200 {
		s := newSession(Config{SessionID: "s", Shell: true})
		s.hsSkip <- struct{}{}
		s.finish(&ClosedError{SessionID: "s"})
		if err := s.handshake(context.Background()); err != nil {
			t.Fatalf("try %d: shell output then channel_closed: %v, want the session open", i, err)
		}
		s.shutdown()
	}
}
