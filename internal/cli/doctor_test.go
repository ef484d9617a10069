package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devgate/devgate/internal/doctor"
)

// doctorHome runs setup (no inventory) and vscode --write in a short HOME.
func doctorHome(t *testing.T) string {
	home, err := os.MkdirTemp("/tmp", "dgd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	t.Setenv("HOME", home)
	if code, _, errs := runCLI(t, "", "setup", "--yes", "--region", "us-east-1"); code != 0 {
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

func TestDoctorCommand(t *testing.T) {
	inst := &fakeInstance{id: "i-0000000000000000a", name: "gpu1", state: "running", agent: "Online"}
	startFakeRegion(t, inst)
	home := doctorHome(t)

	code, m := doctorResults(t, "devbox-gpu1")
	for name, r := range m {
		if !r.OK {
			t.Errorf("healthy: %s failed: %s (fix: %s)", name, r.Detail, r.Fix)
		}
	}
	if code != 0 || !m["test key push"].OK || !m["ssh -G devbox-gpu1"].OK || !m["clock skew"].OK {
		t.Fatalf("healthy: exit %d %+v", code, m)
	}

	inst.state = "stopped"
	code, m = doctorResults(t, "devbox-gpu1")
	if code == 0 || m["instance devbox-gpu1"].OK || !strings.Contains(m["instance devbox-gpu1"].Fix, "devgate start") {
		t.Fatalf("stopped: exit %d %+v", code, m["instance devbox-gpu1"])
	}
	inst.state, inst.agent = "running", "ConnectionLost"
	if _, m = doctorResults(t, "gpu1"); m["SSM agent"].OK {
		t.Fatalf("agent offline passed: %+v", m["SSM agent"])
	}
	inst.agent = "Online"
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDWRONG")
	if _, m = doctorResults(t, "gpu1"); m["AWS credentials"].OK || !strings.Contains(m["AWS credentials"].Detail, "SignatureDoesNotMatch") {
		t.Fatalf("wrong secret: %+v", m["AWS credentials"])
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	os.Chmod(filepath.Join(home, ".ssh/devgate/id_ed25519"), 0o644)
	if _, m = doctorResults(t, "gpu1"); m["key permissions"].OK {
		t.Fatal("0644 key passed")
	}
	// Human output: one ✓/✗ line per check, the fix under each ✗.
	code, out, _ := runCLI(t, "", "doctor", "gpu1")
	if code == 0 || !strings.Contains(out, "✗ key permissions") || !strings.Contains(out, "    fix: chmod 600") || !strings.Contains(out, "✓ AWS credentials") {
		t.Fatalf("text output (%d):\n%s", code, out)
	}
}
