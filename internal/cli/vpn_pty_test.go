//go:build linux

package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/devgate/devgate/internal/exitcode"
)

// openPTY returns the master and the slave of a new pseudo-terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty slave: %v", err)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	return m, s
}

// runOnTTY runs devgate with a terminal as stdin and types lines into it
// once each prompt appears on stderr.
func runOnTTY(t *testing.T, lines []string, args ...string) (int, string) {
	t.Helper()
	master, slave := openPTY(t)
	var errOut syncBuf
	done := make(chan int)
	go func() {
		done <- Main(context.Background(), args, IO{In: slave, Out: &bytes.Buffer{}, ErrOut: &errOut})
	}()
	go func() { // drain what the terminal echoes (nothing, for passwords)
		b := make([]byte, 512)
		for {
			if _, err := master.Read(b); err != nil {
				return
			}
		}
	}()
	for i, l := range lines {
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(errOut.String(), "passphrase") < i+1 {
			if time.Now().After(deadline) {
				t.Fatalf("no prompt %d; stderr:\n%s", i+1, errOut.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
		master.Write([]byte(l + "\n"))
	}
	select {
	case code := <-done:
		return code, errOut.String()
	case <-time.After(20 * time.Second):
		t.Fatalf("devgate did not finish; stderr:\n%s", errOut.String())
	}
	return 0, ""
}

func TestPassphrasePrompt(t *testing.T) {
	t.Setenv(passphraseEnv, "")
	os.Unsetenv(passphraseEnv)
	dir := filepath.Join(t.TempDir(), "pki")
	base := []string{"vpn", "--dir", dir, "--scrypt-work-factor", "10"}
	code, stderr := runOnTTY(t, []string{cliPass, "something else"}, append(base, "pki", "init", "--server-name", "vpn.example.com")...)
	if code != int(exitcode.Usage) || !strings.Contains(stderr, "do not match") {
		t.Fatalf("mismatched confirmation: %d %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "ca.key.age")); err == nil {
		t.Fatal("a CA was created despite the mismatch")
	}
	code, stderr = runOnTTY(t, []string{cliPass, cliPass}, append(base, "pki", "init", "--server-name", "vpn.example.com")...)
	if code != 0 || strings.Contains(stderr, cliPass) {
		t.Fatalf("init on a terminal: %d %s", code, stderr)
	}
	code, stderr = runOnTTY(t, []string{"wrong passphrase"}, append(base, "pki", "issue", "alice")...)
	if code != int(exitcode.Passphrase) {
		t.Fatalf("issue with a wrong typed passphrase: %d %s", code, stderr)
	}
	code, stderr = runOnTTY(t, []string{cliPass}, append(base, "pki", "issue", "alice")...)
	if code != 0 || !strings.Contains(stderr, "issued alice") {
		t.Fatalf("issue on a terminal: %d %s", code, stderr)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
