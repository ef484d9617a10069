package cli_test

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labtest"
)

// TestE2ESetupThenSSH: `devgate setup` against the lab writes the managed
// config; real ssh through ~/.ssh/config (Include) reaches the instance over
// devgate connect, pins its host key under the alias, and refuses a changed
// host key.
func TestE2ESetupThenSSH(t *testing.T) {
	e := newE2E(t, lab.Options{})
	ctx := ctxFor(t, 2*time.Minute)
	if out, errs, code := e.devgate(ctx, nil, nil, "setup", "--yes", "--user", e.user(t)); code != 0 {
		t.Fatalf("setup: %d\n%s\n%s", code, out, errs)
	}
	userConfig := filepath.Join(e.home, ".ssh", "config")
	ssh := func(args ...string) (string, string, error) {
		cmd := exec.CommandContext(ctx, "ssh", append([]string{"-F", userConfig, "-o", "BatchMode=yes",
			"-o", "ControlMaster=no", "-o", "ControlPath=none"}, args...)...)
		cmd.Env = e.environ
		var o, er bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &er
		err := cmd.Run()
		return o.String(), er.String(), err
	}
	out, errs, err := ssh("devbox-gpu1", "echo", "through setup")
	if err != nil || out != "through setup\n" {
		t.Fatalf("ssh devbox-gpu1: %q %v\n%s", out, err, errs)
	}
	kh := filepath.Join(e.home, ".ssh", "devgate", "known_hosts")
	b, err := os.ReadFile(kh)
	if err != nil || !strings.HasPrefix(string(b), "devbox-gpu1 ") {
		t.Fatalf("host key not pinned under devbox-gpu1: %q %v", b, err)
	}
	// Replace the pinned key with another (same instance): ssh must refuse, never connect.
	other := strings.TrimSpace(e.inst2Key(t))
	if err := os.WriteFile(kh, []byte("devbox-gpu1 "+other+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errs, err = ssh("devbox-gpu1", "echo", "must not run")
	if err == nil || strings.Contains(out, "must not run") || !strings.Contains(errs, "Host key verification failed") {
		t.Fatalf("a changed host key was not refused: %v %q\n%s", err, out, errs)
	}
}

func (e *e2e) user(t *testing.T) string {
	in, _ := e.l.Instance("gpu1")
	return in.User
}

// inst2Key is gpu2's host key ("ssh-ed25519 AAAA…"), a valid key that is not gpu1's.
func (e *e2e) inst2Key(t *testing.T) string {
	in, ok := e.l.Instance("gpu2")
	if !ok || in.HostKey == "" {
		t.Fatal("no host key for gpu2")
	}
	return in.HostKey
}

// TestE2EPortForwardingDocument: accounts that only allow
// AWS-StartPortForwardingSession still get ssh, through one smux stream.
func TestE2EPortForwardingDocument(t *testing.T) {
	e := newE2E(t, lab.Options{})
	ctx := ctxFor(t, time.Minute)
	var out bytes.Buffer
	pc := "ProxyCommand=devgate connect %h %p --user %r --document AWS-StartPortForwardingSession"
	stderr, err := e.ssh(ctx, nil, &out, "-o", pc, "gpu1", "echo", "via port forwarding")
	if err != nil || out.String() != "via port forwarding\n" {
		t.Fatalf("ssh: %q %v\n%s", out.String(), err, stderr)
	}
}

// TestE2ESigtermTerminates: SIGTERM (ssh closing its ProxyCommand) ends the
// session cleanly: exit 0 and TerminateSession reaches the service.
func TestE2ESigtermTerminates(t *testing.T) {
	e := newE2E(t, lab.Options{})
	ctx := ctxFor(t, time.Minute)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	cmd := exec.CommandContext(ctx, "devgate", "connect", "gpu1", "22", "--user", e.user(t))
	cmd.Env = e.environ
	cmd.Stdin = r
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	banner := make([]byte, 8)
	if _, err := stdout.Read(banner); err != nil {
		t.Fatalf("no banner: %v\n%s", err, stderr.String())
	}
	cmd.Process.Signal(syscall.SIGTERM)
	go io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
	}
	if e.l.Calls("TerminateSession") < 1 || len(e.l.Mgs().Active()) != 0 {
		t.Fatalf("TerminateSession calls %d, active sessions %v", e.l.Calls("TerminateSession"), e.l.Mgs().Active())
	}
}

// TestE2EThrottledAPIsRetried: with half of all API calls throttled, connect
// still succeeds (the SDK's standard retryer), on the cold path too.
func TestE2EThrottledAPIsRetried(t *testing.T) {
	f := labtest.Fast()
	f.ThrottleRate = 0.5
	f.Seed = 42
	e := newE2E(t, lab.Options{Faults: f})
	ctx := ctxFor(t, 2*time.Minute)
	for _, host := range []string{"gpu1", "gpu2"} {
		var out bytes.Buffer
		stderr, err := e.ssh(ctx, nil, &out, host, "echo", "ok")
		if err != nil || out.String() != "ok\n" {
			t.Fatalf("%s under throttling: %q %v\n%s", host, out.String(), err, stderr)
		}
	}
	if e.l.Throttled() == 0 {
		t.Fatal("no call was throttled: the fault was not exercised")
	}
	t.Logf("%d API calls throttled and retried", e.l.Throttled())
}
