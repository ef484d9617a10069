package ssmmsg

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
)

func TestShellBodies(t *testing.T) {
	if got := string(SizePayload(120, 40)); got != `{"cols":120,"rows":40}` {
		t.Fatalf("size payload %s", got)
	}
	if s, err := ParseSize([]byte(`{"cols":80,"rows":24}`)); err != nil || s.Cols != 80 || s.Rows != 24 {
		t.Fatalf("ParseSize: %+v %v", s, err)
	}
	for _, bad := range []string{`{"cols":0,"rows":24}`, `{"cols":80}`, `{"cols":70000,"rows":1}`, `[`, `{"cols":-1,"rows":2}`} {
		if _, err := ParseSize([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("ParseSize(%s) = %v, want ErrMalformed", bad, err)
		}
	}
	// The agent's exact text (shell.go sendExitCode).
	if n, err := ParseExitCode([]byte("EXIT_CODE: 7")); err != nil || n != 7 {
		t.Fatalf("ParseExitCode: %d %v", n, err)
	}
	for _, bad := range []string{"", "EXIT_CODE:", "EXIT_CODE: x", "exit 3", "EXIT_CODE: 999"} {
		if _, err := ParseExitCode([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("ParseExitCode(%q) = %v, want ErrMalformed", bad, err)
		}
	}
}

// TestStreamCipher: what the client seals, the agent opens, and the reverse;
// each direction has its own key half (§4.4), so a side cannot open its own
// output, and a flipped byte fails.
func TestStreamCipher(t *testing.T) {
	key := make([]byte, DataKeySize)
	rand.Read(key)
	cl, err := NewStreamCipher(key, false, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ag, _ := NewStreamCipher(key, true, rand.Reader)
	c, _ := cl.Seal([]byte("ls -l\r"))
	if len(c) != 12+6+16 {
		t.Fatalf("ciphertext of %d bytes, want nonce 12 + 6 + tag 16", len(c))
	}
	if p, err := ag.Open(c); err != nil || string(p) != "ls -l\r" {
		t.Fatalf("agent Open: %q %v", p, err)
	}
	if _, err := cl.Open(c); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("the client opened its own ciphertext: %v", err)
	}
	// Client decrypts with [0:32]: an AES-GCM sealed by hand with that half opens.
	byHand, _ := NewStreamCipher(append(append([]byte(nil), key[32:]...), key[:32]...), false, rand.Reader)
	c2, _ := byHand.Seal([]byte("x"))
	if p, err := cl.Open(c2); err != nil || string(p) != "x" {
		t.Fatalf("client does not decrypt with key[0:32]: %q %v", p, err)
	}
	c[20] ^= 1
	if _, err := ag.Open(c); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("tampered ciphertext: %v", err)
	}
	if _, err := NewStreamCipher(key[:32], false, rand.Reader); err == nil {
		t.Fatal("a 32-byte key was accepted")
	}
}

// FuzzShellBodies: the size, exit-code, KMS and challenge decoders and the
// cipher's Open return errors on any input, never panic; sizes round-trip.
func FuzzShellBodies(f *testing.F) {
	f.Add([]byte(`{"cols":80,"rows":24}`))
	f.Add([]byte("EXIT_CODE: 3"))
	f.Add([]byte(`{"KMSKeyId":"alias/x"}`))
	f.Add([]byte(`{"Challenge":"AAAA"}`))
	f.Add(make([]byte, 40))
	key := bytes.Repeat([]byte{7}, DataKeySize)
	cl, _ := NewStreamCipher(key, false, rand.Reader)
	f.Fuzz(func(t *testing.T, p []byte) {
		if s, err := ParseSize(p); err == nil {
			if s2, err := ParseSize(SizePayload(int(s.Cols), int(s.Rows))); err != nil || s2 != s {
				t.Fatalf("size %+v does not round-trip: %+v %v", s, s2, err)
			}
		}
		if n, err := ParseExitCode(p); err == nil {
			if m, _ := ParseExitCode(ExitCodePayload(n)); m != n {
				t.Fatalf("exit code %d does not round-trip", n)
			}
		}
		_, _ = ParseKMSEncryptionRequest(p)
		_, _ = ParseEncChallenge(p)
		if _, err := cl.Open(p); err == nil {
			t.Fatalf("random bytes authenticated: %x", p)
		}
	})
}
