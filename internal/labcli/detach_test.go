package labcli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain makes this test binary also `devgate-lab` (testscript puts it on
// PATH under that name), so that --detach re-executes a real devgate-lab.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"devgate-lab": func() { os.Exit(Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr, nil)) },
	})
}

// labCmd runs devgate-lab as a user would, with HOME overridden.
func labCmd(t *testing.T, home string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command("devgate-lab", args...)
	cmd.Env = append(os.Environ(), "HOME="+home)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("devgate-lab %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

// TestUpDetach: `up --detach` returns once the lab is ready (pid file, env and
// ssh config written), and a lab that fails returns its own error, exit 1.
// Ids are random per lab directory and stable for it; D/env names the lab's
// user and ssh config; ssh_config's IdentityFile is absolute under $HOME.
func TestUpDetach(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(t.TempDir(), "lab")
	fast := []string{"--boot-delay", "200ms", "--agent-delay", "100ms", "--pacing=false"}

	_, stderr, code := labCmd(t, home, "up", "--dir", dir, "--detach", "--instance", "gpu1:sleeping")
	if code != 1 || !strings.Contains(stderr, `--instance "gpu1:sleeping": want name[:running|stopped|terminated]`) {
		t.Fatalf("bad instance: exit %d, stderr %q", code, stderr)
	}

	up := func(dir string) map[string]string {
		t.Helper()
		stdout, stderr, code := labCmd(t, home, append([]string{"up", "--dir", dir, "--detach"}, fast...)...)
		if code != 0 {
			t.Fatalf("up --detach: exit %d\n%s\n%s", code, stdout, stderr)
		}
		t.Cleanup(func() { labCmd(t, home, "down", "--dir", dir) })
		if !strings.Contains(stdout, "devgate-lab is up at") || !strings.Contains(stdout, "devgate-lab down --dir "+dir) {
			t.Fatalf("banner: %q", stdout)
		}
		if _, alive := running(dir); !alive {
			t.Fatal("up --detach returned but no lab is running")
		}
		b, err := os.ReadFile(filepath.Join(dir, IDsFileName))
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]string{}
		if err := json.Unmarshal(b, &ids); err != nil {
			t.Fatal(err)
		}
		if len(ids) != 2 || ids["gpu1"] == ids["gpu2"] {
			t.Fatalf("ids %v", ids)
		}
		return ids
	}
	ids := up(dir)
	env, _ := os.ReadFile(filepath.Join(dir, EnvFile))
	for _, want := range []string{"export DEVGATE_SSH_CONFIG=" + filepath.Join(dir, SSHConfigFile) + "\n", "export DEVGATE_USER="} {
		if !strings.Contains(string(env), want) {
			t.Errorf("D/env lacks %q:\n%s", want, env)
		}
	}
	sc, _ := os.ReadFile(filepath.Join(dir, SSHConfigFile))
	if !strings.Contains(string(sc), "IdentityFile "+filepath.Join(home, ".ssh", "devgate", "id_ed25519")+"\n") || strings.Contains(string(sc), "~") {
		t.Errorf("ssh_config IdentityFile is not absolute under HOME=%s:\n%s", home, sc)
	}
	if !strings.Contains(string(sc), "Host gpu1 "+ids["gpu1"]+"\n") {
		t.Errorf("ssh_config does not name gpu1's id %s:\n%s", ids["gpu1"], sc)
	}

	// Up again in the same directory (a second up while running is refused);
	// after down, the same ids come back.
	if _, stderr, code := labCmd(t, home, "up", "--dir", dir, "--detach"); code != 1 || !strings.Contains(stderr, "already running") {
		t.Fatalf("second up: exit %d %q", code, stderr)
	}
	if _, stderr, code := labCmd(t, home, "down", "--dir", dir); code != 0 {
		t.Fatalf("down: %d %s", code, stderr)
	}
	if again := up(dir); again["gpu1"] != ids["gpu1"] || again["gpu2"] != ids["gpu2"] {
		t.Fatalf("ids changed across restarts of one lab dir: %v then %v", ids, again)
	}
	other := up(filepath.Join(t.TempDir(), "lab2"))
	if other["gpu1"] == ids["gpu1"] || other["gpu2"] == ids["gpu2"] {
		t.Fatalf("a second lab dir reuses ids: %v and %v", ids, other)
	}
}

// TestUsageErrors: a usage error exits 2 with an error line and a hint; help goes to stdout.
func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"up"}, {"up", "--dir", t.TempDir(), "--bogus"}, {"frobnicate"}, {"down"}} {
		var o, e bytes.Buffer
		code := Main(context.Background(), args, &o, &e, nil)
		if code != 2 || !strings.Contains(e.String(), "devgate-lab: error: ") || !strings.Contains(e.String(), "devgate-lab: hint: ") {
			t.Errorf("%v: exit %d, stderr %q", args, code, e.String())
		}
	}
	var o, e bytes.Buffer
	if code := Main(context.Background(), []string{"up", "--help"}, &o, &e, nil); code != 0 || !strings.Contains(o.String(), "--detach") || e.Len() != 0 {
		t.Errorf("up --help: exit %d, stdout %q, stderr %q", code, o.String(), e.String())
	}
}
