package cli

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devgate/devgate/internal/exitcode"
)

func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(context.Background(), args, IO{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut})
	return code, out.String(), errOut.String()
}

// fakeEC2 answers DescribeInstances (EC2 query protocol) with two instances.
// A unit-test fake for the inventory call only; the lab covers the rest.
func fakeEC2(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		if r.Form.Get("Action") != "DescribeInstances" {
			http.Error(w, "unexpected "+r.Form.Get("Action"), 400)
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId><reservationSet><item><reservationId>r-1</reservationId><instancesSet>
<item><instanceId>i-0aaaaaaaaaaaaaaa1</instanceId><instanceState><code>16</code><name>running</name></instanceState><tagSet><item><key>Name</key><value>gpu1</value></item></tagSet></item>
<item><instanceId>i-0bbbbbbbbbbbbbbb2</instanceId><instanceState><code>80</code><name>stopped</name></instanceState><tagSet><item><key>Name</key><value>cpu box</value></item></tagSet></item>
</instancesSet></item></reservationSet></DescribeInstancesResponse>`))
	}))
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ENDPOINT_URL", srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
}

func TestSetupEndToEnd(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	t.Setenv("DEVGATE_CONFIG", "")
	fakeEC2(t)
	userCfg := "# mine\nHost github.com\n    User git\n"
	os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
	os.WriteFile(filepath.Join(home, ".ssh", "config"), []byte(userCfg), 0o600)

	// --dry-run shows the diff and writes nothing.
	code, out, errs := runCLI(t, "", "setup", "--dry-run", "--region", "us-east-1")
	if code != 0 || !strings.Contains(out, "+Match final host devbox-gpu1,i-0aaaaaaaaaaaaaaa1") || !strings.Contains(out, "+Include ") {
		t.Fatalf("dry-run: %d\n%s\n%s", code, out, errs)
	}
	if b, _ := os.ReadFile(filepath.Join(home, ".ssh", "config")); string(b) != userCfg {
		t.Fatal("dry-run wrote ~/.ssh/config")
	}
	if _, err := os.Stat(filepath.Join(home, ".ssh", "devgate")); err == nil {
		t.Fatal("dry-run created ~/.ssh/devgate")
	}
	// Answering no writes nothing.
	if code, _, stderr := runCLI(t, "n\n", "setup", "--region", "us-east-1"); code != int(exitcode.Declined) || !strings.Contains(stderr, "devgate: hint: ") {
		t.Fatalf("'n' answer: exit %d, want %d (declined)\n%s", code, exitcode.Declined, stderr)
	}
	if _, err := os.Stat(filepath.Join(home, ".ssh", "devgate")); err == nil {
		t.Fatal("'n' answer created ~/.ssh/devgate")
	}
	// Answering yes writes.
	code, _, errs = runCLI(t, "y\n", "setup", "--region", "us-east-1")
	if code != 0 {
		t.Fatalf("setup: %d %s", code, errs)
	}
	// HOME is a temp dir, not the passwd entry's home that ssh reads ~/.ssh/config from:
	// setup says so and names the -F that reaches what it wrote.
	if !strings.Contains(errs, "devgate: warning: $HOME") || !strings.Contains(errs, "devgate: try: ssh -F "+filepath.Join(home, ".ssh", "config")+" devbox-") {
		t.Fatalf("no passwd-home warning or ssh -F hint: %s", errs)
	}
	for p, mode := range map[string]os.FileMode{".ssh/devgate": 0o700, ".ssh/devgate/id_ed25519": 0o600, ".ssh/devgate/config": 0o600} { // the ControlMaster directory: TestSetupLongHomeShortControlPath
		fi, err := os.Stat(filepath.Join(home, p))
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v %v", p, fi, err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(home, ".ssh", "config"))
	if !strings.HasSuffix(string(b), userCfg) {
		t.Fatalf("user config not kept:\n%s", b)
	}
	// Twice: nothing changes, no diff.
	code, out, errs = runCLI(t, "", "setup", "--region", "us-east-1")
	if code != 0 || out != "" || !strings.Contains(errs, "nothing changed") {
		t.Fatalf("second run: %d %q %q", code, out, errs)
	}
	// The real ssh resolves the alias through the Include.
	cmd := exec.Command("ssh", "-G", "-F", filepath.Join(home, ".ssh", "config"), "devbox-cpu-box")
	cmd.Env = append(os.Environ(), "HOME="+home)
	g, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := filepath.Abs(os.Args[0]) // the path devgate was run by, not resolved
	for _, want := range []string{
		"hostname devbox-cpu-box",
		"user ec2-user",
		"proxycommand " + exe + " connect %h %p --user %r --region us-east-1",
		"identityfile " + filepath.Join(home, ".ssh/devgate/id_ed25519"),
		"stricthostkeychecking accept-new",
	} {
		if !strings.Contains(string(g), want+"\n") {
			t.Errorf("ssh -G lacks %q", want)
		}
	}
}

func TestSetupRejectsLooseKey(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	if code, _, errs := runCLI(t, "", "setup", "--yes", "--no-inventory"); code != 0 {
		t.Fatal(errs)
	}
	os.Chmod(filepath.Join(home, ".ssh/devgate/id_ed25519"), 0o644)
	code, _, errs := runCLI(t, "", "setup", "--yes", "--no-inventory")
	if code != 23 || !strings.Contains(errs, "chmod 600") {
		t.Fatalf("loose key: %d %s", code, errs)
	}
}

// TestSetupLongHomeShortControlPath: a home directory too long for socket
// paths gets the short ControlMaster directory, created 0700, and no warning.
func TestSetupLongHomeShortControlPath(t *testing.T) {
	home := filepath.Join(t.TempDir(), strings.Repeat("h", 50))
	os.MkdirAll(home, 0o700)
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	code, _, errs := runCLI(t, "", "setup", "--yes", "--no-inventory")
	// (the one warning is TestSetup's: this HOME is not the passwd entry's home)
	if code != 0 || strings.Count(errs, "warning") != strings.Count(errs, "warning: $HOME") {
		t.Fatalf("%d %s", code, errs)
	}
	b, _ := os.ReadFile(filepath.Join(home, ".ssh/devgate/config"))
	if !strings.Contains(string(b), "ControlPath /tmp/devgate-%i/%C") {
		t.Fatalf("managed config:\n%s", b)
	}
	dir := fmt.Sprintf("/tmp/devgate-%d", os.Getuid())
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("%s: %v %v", dir, fi, err)
	}
}

// TestSetupHelpMatchesWhatItWrites: setup --help describes the file setup
// writes: `Match final host` blocks, and the Include at the top of
// ~/.ssh/config (sshconfig.AddInclude; TestSetupEndToEnd sees it before the
// user's own lines). It said "Host" blocks and "Include at the END".
func TestSetupHelpMatchesWhatItWrites(t *testing.T) {
	code, out, _ := runCLI(t, "", "setup", "--help")
	help := strings.Join(strings.Fields(out), " ")
	if code != 0 || !strings.Contains(help, `"Match final host" block per instance`) ||
		!strings.Contains(help, "Include at the TOP of ~/.ssh/config") || strings.Contains(help, "END") {
		t.Fatalf("setup --help:\n%s", out)
	}
}
