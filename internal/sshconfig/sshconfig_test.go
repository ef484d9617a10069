package sshconfig

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

var inv = []Instance{
	{Name: "gpu1", ID: "i-0123456789abcdef0"},
	{Name: "Big Box", ID: "i-0fedcba9876543210"},
	{Name: "", ID: "i-00000000000000001"},
}

func TestGolden(t *testing.T) {
	cases := map[string]Options{
		"linux":     {GOOS: "linux", Home: "/home/dev", Binary: "/usr/local/bin/devgate", Profile: "work", Region: "eu-west-1", Tilde: true},
		"darwin":    {GOOS: "darwin", Home: "/Users/dev", Binary: "/opt/homebrew/bin/devgate", Profile: "work", Region: "eu-west-1", User: "ubuntu", Tilde: true},
		"windows":   {GOOS: "windows", Home: `C:\Users\dev`, Binary: `C:\Program Files\devgate\devgate.exe`, Region: "us-east-1", Tilde: true},
		"linux-abs": {GOOS: "linux", Home: "/tmp/h", Binary: "/usr/bin/devgate", Prefix: "gpu"},
	}
	for name, o := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := Generate(o, inv)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, []byte("\n# ~/.ssh/config top line:\n# "+IncludeLine(o)+"\n")...)
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				os.WriteFile(golden, got, 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("differs from %s (-update to rewrite):\n%s", golden, got)
			}
			if bytes.Contains(got, []byte("StrictHostKeyChecking no")) {
				t.Fatal("StrictHostKeyChecking no")
			}
		})
	}
}

func TestControlPathLen(t *testing.T) {
	short := Options{GOOS: "darwin", Home: "/Users/dev", Binary: "/x"}
	if n, max, ok := ControlPathLen(short); !ok || n != len("/Users/dev/.ssh/devgate/cm/")+40 || max != 86 {
		t.Fatalf("short: %d %d %v", n, max, ok)
	}
	long := Options{GOOS: "darwin", Home: "/Users/a.very.long.first.name.and.last.name", Binary: "/x"}
	// Too long under the home directory: the short directory is chosen, and it fits.
	if n, max, ok := ControlPathLen(long); !ok || ControlDir(long) != ShortControlDir || n != len("/tmp/devgate-4294967295/")+40 || max != 86 {
		t.Fatalf("long darwin home: %d %d %v %s", n, max, ok, ControlDir(long))
	}
	// A ControlDir the user chose is kept, and judged.
	long.ControlDir = "/Users/a.very.long.first.name.and.last.name/.ssh/devgate/cm"
	if _, _, ok := ControlPathLen(long); ok {
		t.Fatal("an explicit long ControlDir accepted")
	}
	long.ControlDir = ""
	long.GOOS = "linux"
	if _, max, _ := ControlPathLen(long); max != 90 {
		t.Fatalf("linux max %d", max)
	}
	long.GOOS = "windows"
	if _, _, ok := ControlPathLen(long); !ok {
		t.Fatal("windows has no ControlPath")
	}
}

func TestAddIncludeKeepsUserContent(t *testing.T) {
	user := []byte("# my config\nInclude ~/.ssh/other\n\nHost github.com\n  User git\n  # note\nMatch host foo\n  Port 2222\n")
	inc := "Include /h/.ssh/devgate/config"
	out, changed := AddInclude(user, inc)
	if !changed {
		t.Fatal("not changed")
	}
	if !bytes.HasSuffix(out, user) {
		t.Fatalf("user content not kept verbatim:\n%s", out)
	}
	if i, j := bytes.Index(out, []byte(inc)), bytes.Index(out, []byte("Host github.com")); i < 0 || i > j {
		t.Fatalf("include not before first Host:\n%s", out)
	}
	out2, changed := AddInclude(out, inc)
	if changed || !bytes.Equal(out, out2) {
		t.Fatal("second AddInclude changed the file")
	}
	// An Include inside a Host block is conditional: a top-level one is still added.
	cond := []byte("Host x\n  Include /h/.ssh/devgate/config\n")
	if _, changed := AddInclude(cond, inc); !changed {
		t.Fatal("conditional include treated as top-level")
	}
	// Empty or missing file.
	if out, _ := AddInclude(nil, inc); !strings.Contains(string(out), inc+"\n") {
		t.Fatalf("empty: %q", out)
	}
}

func setupHome(t *testing.T, userConfig string) (string, Options) {
	home := t.TempDir()
	if userConfig != "" {
		os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
		if err := os.WriteFile(UserConfigPath(home), []byte(userConfig), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return home, Options{GOOS: "linux", Home: home, Binary: "/usr/local/bin/devgate", Profile: "p", Region: "us-east-1"}
}

func applyAll(t *testing.T, cs []Change) (changed int) {
	t.Helper()
	for _, c := range cs {
		if c.Changed() {
			changed++
			if c.Diff() == "" {
				t.Fatalf("%s changed but no diff", c.Path)
			}
		}
		if _, err := c.Apply(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)); err != nil {
			t.Fatal(err)
		}
	}
	return changed
}

func TestPlanApplyIdempotentKeepsUserLinesAndBacksUp(t *testing.T) {
	user := "# hello\nHost github.com\n    User git\n\n# trailing comment\n"
	home, o := setupHome(t, user)
	cs, err := Plan(o, inv)
	if err != nil {
		t.Fatal(err)
	}
	if n := applyAll(t, cs); n != 2 {
		t.Fatalf("first run changed %d files, want 2", n)
	}
	got, _ := os.ReadFile(UserConfigPath(home))
	for _, line := range strings.Split(user, "\n") {
		if !strings.Contains(string(got), line) {
			t.Fatalf("line %q lost:\n%s", line, got)
		}
	}
	bak, err := os.ReadFile(UserConfigPath(home) + ".devgate-backup-20260102T030405Z")
	if err != nil || string(bak) != user {
		t.Fatalf("backup: %q %v", bak, err)
	}
	fi, _ := os.Stat(UserConfigPath(home))
	if fi.Mode().Perm() != 0o644 {
		t.Fatalf("user config mode changed to %04o", fi.Mode().Perm())
	}
	for p, want := range map[string]os.FileMode{ManagedPath(home): 0o600, filepath.Dir(ManagedPath(home)): 0o700} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != want {
			t.Fatalf("%s: %v %v", p, fi, err)
		}
	}
	cs, err = Plan(o, inv)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.Changed() || c.Diff() != "" {
			t.Fatalf("second run would change %s:\n%s", c.Path, c.Diff())
		}
	}
	entries, _ := os.ReadDir(filepath.Join(home, ".ssh"))
	if len(entries) != 3 { // config, backup, devgate/
		t.Fatalf("unexpected files: %v", entries)
	}
}

// TestSSHResolves runs the real ssh -G on the generated config through the
// Include in a temporary ~/.ssh/config.
func TestSSHResolves(t *testing.T) {
	home, o := setupHome(t, "Host other\n    User someone\n")
	cs, err := Plan(o, inv)
	if err != nil {
		t.Fatal(err)
	}
	applyAll(t, cs)
	g := func(alias string) map[string]string {
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
	m := g("devbox-gpu1")
	want := map[string]string{
		"hostname":              "devbox-gpu1", // resolved by Name at connect time
		"user":                  "ec2-user",
		"proxycommand":          "/usr/local/bin/devgate connect %h %p --user %r --profile p --region us-east-1",
		"identitiesonly":        "yes",
		"serveraliveinterval":   "15",
		"serveralivecountmax":   "3",
		"controlmaster":         "auto",
		"controlpersist":        "600",
		"stricthostkeychecking": "accept-new",
		"userknownhostsfile":    filepath.Join(home, ".ssh/devgate/known_hosts"),
		"identityfile":          filepath.Join(home, ".ssh/devgate/id_ed25519"),
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %q, want %q", k, m[k], v)
		}
	}
	cm := filepath.Join(home, ".ssh/devgate/cm") + "/"
	if n, _ := controlPathLen("linux", cm); n > 90 { // t.TempDir() is long: the short directory
		cm = fmt.Sprintf("/tmp/devgate-%d/", os.Getuid())
	}
	if !strings.HasPrefix(m["controlpath"], cm) {
		t.Errorf("controlpath = %q, want under %s", m["controlpath"], cm)
	}
	// The instance id reaches the same host block (ssh i-…).
	if m := g("i-0fedcba9876543210"); m["user"] != "ec2-user" || !strings.Contains(m["proxycommand"], "--profile p --region us-east-1") {
		t.Errorf("i-0fedcba9876543210: %q %q", m["user"], m["proxycommand"])
	}
	// An unknown alias under the prefix still gets the ProxyCommand, with the alias as host.
	if m := g("devbox-new"); m["hostname"] != "devbox-new" || !strings.Contains(m["proxycommand"], "connect %h %p") {
		t.Errorf("devbox-new: %q %q", m["hostname"], m["proxycommand"])
	}
	// The user's own hosts are untouched.
	if m := g("other"); m["user"] != "someone" || m["proxycommand"] != "" {
		t.Errorf("other: user %q proxycommand %q", m["user"], m["proxycommand"])
	}
}

func FuzzAddInclude(f *testing.F) {
	f.Add([]byte("Host a\n  User b\n"), "Include /x/config")
	f.Add([]byte("Include /x/config\nHost *\n"), "Include /x/config")
	f.Add([]byte(""), "Include ~/.ssh/devgate/config")
	f.Fuzz(func(t *testing.T, user []byte, inc string) {
		out, changed := AddInclude(user, inc)
		if !changed && !bytes.Equal(out, user) {
			t.Fatal("unchanged but different")
		}
		if changed && !bytes.HasSuffix(out, user) {
			t.Fatal("user content not kept")
		}
	})
}

func TestManagedAliases(t *testing.T) {
	b, err := Generate(Options{GOOS: "linux", Home: "/h", Binary: "/b"}, inv)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(ManagedAliases(b), ",")
	if got != "devbox-big-box,devbox-gpu1,devbox-i-00000000000000001" {
		t.Fatalf("aliases %q", got)
	}
}

func TestManagedHosts(t *testing.T) {
	b, _ := Generate(Options{GOOS: "linux", Home: "/h", Binary: "/b"}, inv)
	m := ManagedHosts(b)
	if len(m) != 3 || m["devbox-gpu1"] != "i-0123456789abcdef0" {
		t.Fatalf("%v", m)
	}
	// Files of earlier versions: HostName.
	m = ManagedHosts([]byte("Host devbox-a\n    HostName i-0aaaaaaaaaaaaaaa1\nHost devbox-*\n    User x\n"))
	if len(m) != 1 || m["devbox-a"] != "i-0aaaaaaaaaaaaaaa1" {
		t.Fatalf("%v", m)
	}
}
