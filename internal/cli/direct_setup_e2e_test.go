package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/lab"
)

// TestE2EDirectPathThroughSetupConfig: the direct path as a user meets it —
// ssh through the ~/.ssh/config that `devgate setup` wrote (Include,
// ControlMaster auto, ControlPersist, so connect's stderr goes nowhere), in a
// pseudo-terminal, each ssh ending its terminal as `script -c` does. With the
// VPN up, the first ssh says it went direct and the next two share its
// master: one relayed connection, no data channel in the lab. (The terminal
// that closes under the master sends devgate connect a SIGHUP while the
// master still uses it: devgate must carry on, or every later ssh pays a
// new connection.) The VPN dropped under the master ends it; the next ssh
// falls back to Session Manager and says why; after `ssh -O exit` nothing is
// left open.
func TestE2EDirectPathThroughSetupConfig(t *testing.T) {
	e := newE2E(t, lab.Options{})
	shortHome(t, e) // setup's ControlPath must fit in a socket address
	e.vpn(t, lab.VPNUp)
	e.environ = append(e.environ, patientBudget)
	ctx := ctxFor(t, 3*time.Minute)
	if out, errs, code := e.devgate(ctx, nil, nil, "setup", "--yes", "--user", e.user(t)); code != 0 {
		t.Fatalf("setup: %d\n%s\n%s", code, out, errs)
	}
	cfg, _ := os.ReadFile(filepath.Join(e.home, ".ssh", "devgate", "config"))
	if !strings.Contains(string(cfg), "ControlPersist") {
		t.Fatalf("setup's config has no ControlPersist:\n%s", cfg)
	}
	defer e.exitMasters(t, "devbox-gpu1")

	for i := range 3 {
		term, err := e.sshInPty(t, ctx, nil, "devbox-gpu1", "echo", "direct-through-setup")
		if err != nil || !strings.Contains(term, "direct-through-setup") {
			t.Fatalf("ssh %d: %v\n%s", i, err, term)
		}
		if i == 0 && !viaDirect.MatchString(term) {
			t.Fatalf("the terminal does not say the connection went direct:\n%s", term)
		}
	}
	if n := e.l.Mgs().Attached(); n != 0 {
		t.Fatalf("%d data channels attached; the direct path uses none", n)
	}
	if st := e.l.VPN(); st.Relayed != 1 {
		t.Fatalf("the VPN relayed %d connections, want 1 (the ControlMaster's, shared by the three ssh)", st.Relayed)
	}

	// The VPN goes down under the persisting master: the next ssh gets a
	// fresh connection through Session Manager.
	e.vpn(t, lab.VPNRefuse)
	deadline := time.Now().Add(time.Minute)
	for {
		term, err := e.sshInPty(t, ctx, nil, "devbox-gpu1", "echo", "after-the-vpn")
		if err == nil && strings.Contains(term, "after-the-vpn") {
			if !strings.Contains(term, "refused the connection; Session Manager") {
				t.Fatalf("the terminal does not say why Session Manager was taken:\n%s", term)
			}
			break
		}
		// The first one may still have met the dying master.
		if time.Now().After(deadline) {
			t.Fatalf("ssh after the VPN went down: %v\n%s", err, term)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := e.l.Mgs().Attached(); n < 1 {
		t.Fatal("no data channel after the VPN went down")
	}
	e.exitMasters(t, "devbox-gpu1")
	waitNoSessions(t, e)
	if s, term := e.l.Calls("StartSession"), e.l.Calls("TerminateSession"); s != term {
		t.Fatalf("%d StartSession, %d TerminateSession after ssh -O exit", s, term)
	}
}
