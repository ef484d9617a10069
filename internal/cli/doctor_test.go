package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devgate/devgate/internal/doctor"
	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labtest"
)

// doctorHome runs setup (no inventory) and vscode --write in a short HOME.
func doctorHome(t *testing.T) string {
	home, err := os.MkdirTemp("/tmp", "dgd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	t.Setenv("HOME", home)
	if code, _, errs := runCLI(t, "", "setup", "--yes"); code != 0 {
		t.Fatal(errs)
	}
	os.MkdirAll(filepath.Join(home, ".config/Code/User"), 0o700)
	if code, _, errs := runCLI(t, "", "vscode", "--write"); code != 0 {
		t.Fatal(errs)
	}
	return home
}

func doctorResults(t *testing.T, args ...string) (int, map[string]doctor.Result) {
	t.Helper()
	code, out, errs := runCLI(t, "", append([]string{"doctor", "--json"}, args...)...)
	var rs []doctor.Result
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		t.Fatalf("%v\n%s\n%s", err, out, errs)
	}
	m := map[string]doctor.Result{}
	for _, r := range rs {
		m[r.Name] = r
	}
	return code, m
}

// TestDoctorCommand runs doctor against devgate-lab (the real SDK, a real
// session to the instance's sshd) and checks it names the right failing
// check for each broken thing.
func TestDoctorCommand(t *testing.T) {
	l := labtest.Start(t, lab.Options{})
	for _, kv := range l.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	home := doctorHome(t)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(home, ".cache"))

	code, m := doctorResults(t, "devbox-gpu1")
	for name, r := range m {
		if !r.OK {
			t.Errorf("healthy: %s failed: %s (fix: %s)", name, r.Detail, r.Fix)
		}
	}
	if code != 0 || !m["test key push"].OK || !m["ssh -G devbox-gpu1"].OK || !m["clock skew"].OK ||
		!strings.HasPrefix(m["SSM session to port 22"].Detail, "SSH-2.0-") {
		t.Fatalf("healthy: exit %d %+v", code, m)
	}

	// DEVGATE_USER is the user of the test key push, as in every command.
	t.Setenv("DEVGATE_USER", "ubuntu")
	if _, m = doctorResults(t, "devbox-gpu1"); !strings.HasSuffix(m["test key push"].Detail, "for ubuntu") {
		t.Fatalf("DEVGATE_USER ignored: %+v", m["test key push"])
	}
	t.Setenv("DEVGATE_USER", "")
	// DEVGATE_SSH_CONFIG names the ssh config doctor checks (the lab's D/env sets it): one without
	// devgate's Include fails the ssh -G check.
	bare := filepath.Join(t.TempDir(), "ssh_config")
	os.WriteFile(bare, []byte("Host *\n    User nobody\n"), 0o600)
	t.Setenv("DEVGATE_SSH_CONFIG", bare)
	if _, m = doctorResults(t, "devbox-gpu1"); m["ssh -G devbox-gpu1"].OK {
		t.Fatalf("DEVGATE_SSH_CONFIG ignored: %+v", m["ssh -G devbox-gpu1"])
	}
	t.Setenv("DEVGATE_SSH_CONFIG", "")

	code, m = doctorResults(t, "devbox-gpu2") // stopped
	if code == 0 || m["instance devbox-gpu2"].OK || !strings.Contains(m["instance devbox-gpu2"].Fix, "devgate start") ||
		!m["SSM agent"].Skipped || !m["SSM session to port 22"].Skipped {
		t.Fatalf("stopped: exit %d %+v", code, m)
	}

	l.SetAgentOnline("gpu1", false)
	if code, m = doctorResults(t, "gpu1"); code == 0 || m["SSM agent"].OK || m["SSM agent"].Skipped || !m["instance gpu1"].OK {
		t.Fatalf("agent offline: exit %d %+v", code, m["SSM agent"])
	}
	l.ResetAgent("gpu1")

	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
	if _, m = doctorResults(t, "gpu1"); m["AWS credentials"].OK || !strings.Contains(m["AWS credentials"].Detail, "SignatureDoesNotMatch") {
		t.Fatalf("wrong secret: %+v", m["AWS credentials"])
	}
	_, secret := l.Credentials()
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)

	os.Chmod(filepath.Join(home, ".ssh/devgate/id_ed25519"), 0o644)
	if _, m = doctorResults(t, "gpu1"); m["key permissions"].OK {
		t.Fatal("0644 key passed")
	}
	// Human output: one ✓/✗ line per check, the fix under each ✗.
	code, out, _ := runCLI(t, "", "doctor", "gpu1")
	if code == 0 || !strings.Contains(out, "✗ key permissions") || !strings.Contains(out, "    fix: chmod 600") || !strings.Contains(out, "✓ AWS credentials") {
		t.Fatalf("text output (%d):\n%s", code, out)
	}
	os.Chmod(filepath.Join(home, ".ssh/devgate/id_ed25519"), 0o600)

	// A HOME deep enough that ~/.ssh/devgate/cm/%C passes the socket-path limit: setup chooses the
	// short directory and the check passes; a too-long ControlPath of the user's own fails it.
	long := filepath.Join(home, strings.Repeat("d", 60))
	os.MkdirAll(long, 0o700)
	t.Setenv("HOME", long)
	if code, _, errs := runCLI(t, "", "setup", "--yes"); code != 0 {
		t.Fatal(errs)
	}
	if _, m = doctorResults(t, "devbox-gpu1"); !m["ControlPath length"].OK || !strings.Contains(m["ControlPath length"].Detail, "of 90 bytes") {
		t.Fatalf("a %d-byte HOME: %+v", len(long), m["ControlPath length"])
	}
	f, _ := os.OpenFile(filepath.Join(long, ".ssh", "config"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("\nHost devbox-gpu1\n    ControlPath " + long + "/.ssh/cm/%C\n")
	f.Close()
	if _, m = doctorResults(t, "devbox-gpu1"); m["ControlPath length"].OK {
		t.Fatalf("the user's %d-byte ControlPath passed: %+v", len(long)+48, m["ControlPath length"])
	}
}
