package cli_test

// Messages reach the user (issue 11): through the config `devgate setup`
// writes (ControlMaster auto, ControlPersist: ssh gives devgate's stderr to
// /dev/null), run in a real pseudo-terminal by script(1), devgate's
// progress and its error and hint appear on the terminal, and the failure
// is in the event log and in `devgate doctor`.

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/doctor"
	"github.com/devgate/devgate/internal/eventlog"
	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labtest"
)

// shortHome moves e's HOME to a short path: the ControlPath socket of the
// setup config lives under it and must fit a Unix socket address.
func shortHome(t *testing.T, e *e2e) {
	t.Helper()
	home, err := os.MkdirTemp("", "h")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	e.home = home
	var env []string
	for _, kv := range e.environ {
		if !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "XDG_CACHE_HOME=") {
			env = append(env, kv)
		}
	}
	e.environ = append(env, "HOME="+home, "XDG_CACHE_HOME="+filepath.Join(home, ".cache"))
}

// sshInPty runs ssh through ~/.ssh/config in a pseudo-terminal (script -e
// returns ssh's exit code) and returns what the terminal showed.
func (e *e2e) sshInPty(t *testing.T, ctx context.Context, env []string, args ...string) (string, error) {
	t.Helper()
	line := "ssh -F " + filepath.Join(e.home, ".ssh", "config") + " -o BatchMode=yes " + strings.Join(args, " ")
	cmd := exec.CommandContext(ctx, "script", "-qefc", line, "/dev/null")
	cmd.Env = append(append([]string(nil), e.environ...), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (e *e2e) exitMasters(t *testing.T, hosts ...string) {
	for _, h := range hosts {
		cmd := exec.Command("ssh", "-F", filepath.Join(e.home, ".ssh", "config"), "-O", "exit", h)
		cmd.Env = e.environ
		cmd.Run()
	}
}

func TestE2EMessagesReachTheTerminal(t *testing.T) {
	f := labtest.Fast()
	f.BootDelay = time.Second
	f.AgentDelay = time.Second
	e := newE2E(t, lab.Options{Faults: f})
	shortHome(t, e)
	ctx := ctxFor(t, 3*time.Minute)
	if out, errs, code := e.devgate(ctx, nil, nil, "setup", "--yes", "--user", e.user(t)); code != 0 {
		t.Fatalf("setup: %d\n%s\n%s", code, out, errs)
	}
	cfg, _ := os.ReadFile(filepath.Join(e.home, ".ssh", "devgate", "config"))
	if !strings.Contains(string(cfg), "ControlPersist") {
		t.Fatalf("the setup config has no ControlPersist:\n%s", cfg)
	}
	t.Cleanup(func() { e.exitMasters(t, "devbox-gpu1", "devbox-gpu2") })

	// A wrong secret key: devgate's error and hint on the terminal, not only ssh's "Connection closed".
	term, err := e.sshInPty(t, ctx, []string{"AWS_SECRET_ACCESS_KEY=wrong"}, "devbox-gpu1", "true")
	if err == nil {
		t.Fatalf("ssh with a wrong secret key succeeded:\n%s", term)
	}
	for _, want := range []string{"devgate: error:", "devgate: hint:", "credentials"} {
		if !strings.Contains(term, want) {
			t.Errorf("the terminal lacks %q:\n%s", want, term)
		}
	}

	// A stopped instance: its progress lines on the terminal while it starts.
	term, err = e.sshInPty(t, ctx, nil, "devbox-gpu2", "echo", "up")
	if err != nil || !strings.Contains(term, "up") {
		t.Fatalf("ssh devbox-gpu2: %v\n%s", err, term)
	}
	for _, want := range []string{"Starting instance " + e.inst(t, "gpu2") + " (stopped)", "Waiting for SSM agent", "Connected in"} {
		if !strings.Contains(term, want) {
			t.Errorf("the terminal lacks %q:\n%s", want, term)
		}
	}

	// The failure is in the event log (0600, one JSON line, exit class and hint) …
	logPath := filepath.Join(e.home, ".cache", "devgate", eventlog.FileName)
	st, err := os.Stat(logPath)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("event log %s: %v %v", logPath, st, err)
	}
	b, _ := os.ReadFile(logPath)
	var failure *eventlog.Event
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var ev eventlog.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if ev.Kind == eventlog.KindFailure {
			failure = &ev
		}
	}
	if failure == nil || failure.Command != "connect" || failure.Target != "devbox-gpu1" && failure.Target != e.inst(t, "gpu1") || failure.Code != 10 || failure.Hint == "" {
		t.Fatalf("no connect failure with exit 10 and a hint in the log:\n%s", b)
	}
	if strings.Contains(string(b), "wrong") || strings.Contains(string(b), lab.DefaultSecret) {
		t.Fatalf("the log holds the secret:\n%s", b)
	}
	// … and in doctor's output.
	out, _, _ := e.devgate(ctx, nil, nil, "doctor")
	if !regexp.MustCompile(`last connect to devbox-gpu1( \(i-[0-9a-f]+\))? failed`).MatchString(out) || !strings.Contains(out, "(exit 10)") || !strings.Contains(out, "— fix: ") {
		t.Fatalf("doctor does not show the failure:\n%s", out)
	}
	// … and in doctor --json, as an info entry that does not fail doctor.
	out, _, _ = e.devgate(ctx, nil, nil, "doctor", "--json")
	var rs []doctor.Result
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		t.Fatalf("doctor --json: %v\n%s", err, out)
	}
	found := false
	for _, r := range rs {
		if r.Name == "recent failure" && r.Info && !r.OK && strings.Contains(r.Detail, "(exit 10)") && r.Fix != "" &&
			regexp.MustCompile(`^last connect to devbox-gpu1( \(i-[0-9a-f]+\))? failed`).MatchString(r.Detail) {
			found = true
		}
	}
	if !found {
		t.Fatalf("doctor --json lacks the failure:\n%s", out)
	}
}

// TestE2EProgressToLogWithoutTerminal: with stderr /dev/null and no
// terminal (VS Code runs ssh so), the progress lines are in the log.
func TestE2EProgressToLogWithoutTerminal(t *testing.T) {
	e := newE2E(t, lab.Options{})
	ctx := ctxFor(t, time.Minute)
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	cmd := exec.CommandContext(ctx, "ssh", "-F", e.config, "-o", "BatchMode=yes", "gpu2", "true")
	cmd.Env = e.environ
	cmd.Stderr = null // ssh hands its stderr to the ProxyCommand
	// No controlling terminal: a new session.
	cmd.SysProcAttr = newSession()
	if err := cmd.Run(); err != nil {
		t.Fatalf("ssh gpu2: %v", err)
	}
	evs, err := eventlog.Open(filepath.Join(e.home, ".cache", "devgate")).Last(eventlog.KindProgress, 100)
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, ev := range evs {
		all = append(all, ev.Message)
	}
	joined := strings.Join(all, "\n")
	for _, want := range []string{"Starting instance", "Connected in"} {
		if !strings.Contains(joined, want) {
			t.Errorf("the log's progress lacks %q:\n%s", want, joined)
		}
	}
}

// TestE2ESessionEndReachesTheTerminal: through the config `devgate setup`
// writes (ControlPersist: devgate's stderr is /dev/null), an instance
// stopped under a running ssh ends the session; the terminal shows why
// (devgate's line), not only ssh's "Shared connection to … closed". An
// ordinary end (the command exits) adds no such line.
func TestE2ESessionEndReachesTheTerminal(t *testing.T) {
	e := newE2E(t, lab.Options{Faults: labtest.Fast()})
	shortHome(t, e)
	ctx := ctxFor(t, 2*time.Minute)
	if out, errs, code := e.devgate(ctx, nil, nil, "setup", "--yes", "--user", e.user(t)); code != 0 {
		t.Fatalf("setup: %d\n%s\n%s", code, out, errs)
	}
	t.Cleanup(func() { e.exitMasters(t, "devbox-gpu1") })

	term, err := e.sshInPty(t, ctx, nil, "devbox-gpu1", "echo", "up")
	if err != nil || !strings.Contains(term, "up") {
		t.Fatalf("ssh devbox-gpu1: %v\n%s", err, term)
	}
	if strings.Contains(term, "session ended") {
		t.Fatalf("an ordinary end printed a session end:\n%s", term)
	}
	e.exitMasters(t, "devbox-gpu1")
	waitFor(t, "the first session ended", func() bool { return len(e.l.Mgs().Active()) == 0 })

	type result struct {
		term string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		term, err := e.sshInPty(t, ctx, nil, "devbox-gpu1", "sleep", "60")
		done <- result{term, err}
	}()
	waitFor(t, "ssh connected", func() bool {
		n, _ := e.l.SSHDConnections("gpu1")
		return n > 0 && len(e.l.Mgs().Active()) == 1
	})
	time.Sleep(500 * time.Millisecond) // ssh runs its command
	if err := e.l.StopInstance("gpu1"); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("ssh did not end after the instance stopped")
	}
	if r.err == nil {
		t.Fatalf("ssh succeeded although the instance stopped:\n%s", r.term)
	}
	if !strings.Contains(r.term, "devgate: session ended: instance stopped") {
		t.Fatalf("the terminal does not say why the connection closed:\n%s", r.term)
	}
}
