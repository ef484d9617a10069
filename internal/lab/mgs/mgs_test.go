package mgs

import (
	"errors"
	"testing"
)

func TestTokens(t *testing.T) {
	s := New(Config{})
	tok, err := s.Create(SessionSpec{SessionID: "s-1", Target: "i-1"})
	if err != nil || tok == "" {
		t.Fatalf("Create: %q %v", tok, err)
	}
	tok2, err := s.Resume("s-1")
	if err != nil || tok2 == "" || tok2 == tok {
		t.Fatalf("Resume: %q %v (first %q)", tok2, err, tok)
	}
	if _, err := s.Resume("nope"); !errors.Is(err, ErrUnknownSession) {
		t.Fatalf("Resume unknown: %v", err)
	}
	s.TerminateTarget("i-1", "stopped")
	if tok3, err := s.Resume("s-1"); err != nil || tok3 != "" {
		t.Fatalf("Resume after end: %q %v", tok3, err)
	}
}
