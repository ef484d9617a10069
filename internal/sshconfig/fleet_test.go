package sshconfig

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sshG runs the real `ssh -G` for alias through ~/.ssh/config under home.
func sshG(t *testing.T, home, alias string) map[string]string {
	t.Helper()
	cmd := exec.Command("ssh", "-G", "-F", UserConfigPath(home), alias)
	cmd.Env = append(os.Environ(), "HOME="+home)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ssh -G %s: %v", alias, err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		k, v, _ := strings.Cut(l, " ")
		if _, dup := m[k]; !dup {
			m[k] = v
		}
	}
	return m
}

// TestFleetUserSettingsWin: two sets (accounts/regions) in one managed file;
// each host gets its own user and ProxyCommand; the user's own blocks, above
// AND below the Include, win where they say something.
func TestFleetUserSettingsWin(t *testing.T) {
	home := t.TempDir()
	user := "Host devbox-b-cpu\n    ControlPath /tmp/mine-%C\n" // above: ends up below the Include (added at the top)
	os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
	os.WriteFile(UserConfigPath(home), []byte(user), 0o600)
	o := Options{GOOS: "linux", Home: home, Binary: "/usr/local/bin/devgate",
		Sets: []Set{{"devbox", "A", "us-east-1"}, {"devbox-b", "B", "eu-west-1"}}}
	inv := []Instance{
		{Name: "gpu1", ID: "i-0aaaaaaaaaaaaaaa1", User: "ubuntu", Prefix: "devbox", Profile: "A", Region: "us-east-1"},
		{Name: "cpu", ID: "i-0bbbbbbbbbbbbbbb2", User: "admin", Prefix: "devbox-b", Profile: "B", Region: "eu-west-1"},
	}
	cs, err := Plan(o, inv)
	if err != nil {
		t.Fatal(err)
	}
	applyAll(t, cs)
	// And a block the user appends below everything, after setup.
	f, _ := os.OpenFile(UserConfigPath(home), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("\nHost devbox-gpu1\n    User alice\n")
	f.Close()
	cases := []struct{ alias, user, proxy, controlPath string }{
		{"devbox-gpu1", "alice", "--profile A --region us-east-1", ""},
		{"i-0aaaaaaaaaaaaaaa1", "ubuntu", "--profile A --region us-east-1", ""},
		{"devbox-b-cpu", "admin", "--profile B --region eu-west-1", "/tmp/mine-"},
		{"devbox-b-new", "ec2-user", "--profile B --region eu-west-1", ""},
		{"devbox-new", "ec2-user", "--profile A --region us-east-1", ""},
		{"i-0cccccccccccccccc", "ec2-user", "connect %h %p --user %r", ""},
	}
	for _, c := range cases {
		m := sshG(t, home, c.alias)
		if m["user"] != c.user || !strings.HasSuffix(m["proxycommand"], c.proxy) || m["stricthostkeychecking"] != "accept-new" {
			t.Errorf("%s: user %q proxycommand %q stricthostkeychecking %q", c.alias, m["user"], m["proxycommand"], m["stricthostkeychecking"])
		}
		if c.controlPath != "" && !strings.HasPrefix(m["controlpath"], c.controlPath) {
			t.Errorf("%s: controlpath %q, want the user's", c.alias, m["controlpath"])
		}
	}
	if m := sshG(t, home, "elsewhere"); m["proxycommand"] != "" {
		t.Errorf("a host of the user's got devgate's ProxyCommand: %q", m["proxycommand"])
	}
	// An ssh without Match final gets plain Host blocks that it can parse.
	o.PlainHost = true
	b, err := Generate(o, inv)
	if err != nil || strings.Contains(string(b), "Match final host") || !strings.Contains(string(b), "Host devbox-b-cpu i-0bbbbbbbbbbbbbbb2\n") {
		t.Fatalf("PlainHost:\n%s", b)
	}
}

func TestSupportsMatchFinal(t *testing.T) {
	for v, want := range map[string]bool{
		"OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.15 3 Sep 2024": true,
		"OpenSSH_8.2p1 Ubuntu-4ubuntu0.11, OpenSSL 1.1.1f":          true,
		"OpenSSH_8.1p1, LibreSSL 2.7.3":                             false,
		"OpenSSH_for_Windows_8.1p1, LibreSSL 3.0.2":                 false,
		"OpenSSH_for_Windows_9.5p1, LibreSSL 3.8.2":                 true,
		"OpenSSH_7.4p1, OpenSSL 1.0.2k-fips":                        false,
		"OpenSSH_10.0p2":                                            true,
		"":                                                          true,
	} {
		if got := SupportsMatchFinal(v); got != want {
			t.Errorf("%q: %v", v, got)
		}
	}
}

// TestApplyThroughSymlinkUniqueBackups: a symlinked ~/.ssh/config (dotfiles
// repos) is written where it points and stays a link; two applies in the
// same second keep two backups.
func TestApplyThroughSymlinkUniqueBackups(t *testing.T) {
	home := t.TempDir()
	repo := filepath.Join(t.TempDir(), "dotfiles")
	os.MkdirAll(repo, 0o700)
	real := filepath.Join(repo, "ssh_config")
	os.WriteFile(real, []byte("Host x\n    User y\n"), 0o644)
	os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
	if err := os.Symlink(real, UserConfigPath(home)); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var baks []string
	for i, content := range []string{"one\n", "two\n"} {
		c, err := ReadChange(UserConfigPath(home), []byte(content), 0o600, 0o700)
		if err != nil {
			t.Fatal(err)
		}
		bak, err := c.Apply(now)
		if err != nil || bak == "" {
			t.Fatalf("apply %d: %q %v", i, bak, err)
		}
		baks = append(baks, bak)
	}
	if fi, err := os.Lstat(UserConfigPath(home)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("~/.ssh/config is no longer a symlink: %v %v", fi.Mode(), err)
	}
	if b, _ := os.ReadFile(real); string(b) != "two\n" {
		t.Fatalf("link target holds %q", b)
	}
	if fi, _ := os.Stat(real); fi.Mode().Perm() != 0o644 {
		t.Fatalf("target mode %v changed", fi.Mode())
	}
	if baks[0] == baks[1] {
		t.Fatalf("one backup name for two applies: %s", baks[0])
	}
	for i, want := range []string{"Host x\n    User y\n", "one\n"} {
		if b, _ := os.ReadFile(baks[i]); string(b) != want {
			t.Errorf("backup %s holds %q, want %q", baks[i], b, want)
		}
	}
}

func TestEnsureControlDir(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(home, "cm-%i")
	if err := EnsureControlDir(home, dir); err != nil {
		t.Fatal(err)
	}
	p := strings.ReplaceAll(dir, "%i", itoa(os.Getuid()))
	if fi, err := os.Lstat(p); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("%s: %v %v", p, fi, err)
	}
	if err := EnsureControlDir(home, dir); err != nil {
		t.Fatalf("second call: %v", err)
	}
	os.Chmod(p, 0o777)
	if err := EnsureControlDir(home, dir); err == nil || !strings.Contains(err.Error(), "0700") {
		t.Fatalf("a world-writable directory was accepted: %v", err)
	}
	os.Remove(p)
	os.Symlink(t.TempDir(), p)
	if err := EnsureControlDir(home, dir); err == nil {
		t.Fatal("a symlink was accepted")
	}
}

func itoa(n int) string { return fmtInt(n) }

func fmtInt(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}
