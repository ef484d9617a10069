package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labtest"
)

const (
	ubuntuAMI = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20240423"
	debianAMI = "debian-12-amd64-20240201-1644"
)

// fleet is two lab "accounts" in two regions, reached through AWS profiles
// (endpoint_url, region and keys of each in ~/.aws), and a HOME of 80 bytes.
type fleet struct {
	a, b    *lab.Lab
	home    string
	bin     string // devgate, through a symlink as a package manager installs it
	environ []string
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	a := labtest.Start(t, lab.Options{Region: "us-east-1", Account: "111111111111",
		AccessKey: "AKIAFLEETA0000000001", Secret: "secret-a",
		Instances: []lab.InstanceSpec{
			{Name: "gpu1", Image: ubuntuAMI, User: "ubuntu"},
			{Name: "al1", User: "ec2-user"}, // Amazon Linux 2023 (the lab's default image)
			// An Amazon Linux image whose owner logs in as ubuntu: only the user's own ssh block gets in.
			{Name: "custom", User: "ubuntu"},
			{Name: "tagged", Image: ubuntuAMI, User: "admin", Tags: map[string]string{"devgate:user": "admin"}},
		}})
	b := labtest.Start(t, lab.Options{Region: "eu-west-1", Account: "222222222222",
		AccessKey: "AKIAFLEETB0000000002", Secret: "secret-b",
		Instances: []lab.InstanceSpec{{ID: "i-0b0000000000000b1", Name: "cpu", Image: debianAMI, User: "admin", PrivateIP: "10.1.0.5"}}})
	root, err := os.MkdirTemp("/tmp", "dgf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	home := filepath.Join(root, "h")
	home += strings.Repeat("x", 80-len(home)) // 80 bytes: ~/.ssh/devgate/cm/%C would not fit a socket path
	f := &fleet{a: a, b: b, home: home}
	os.MkdirAll(filepath.Join(home, ".aws"), 0o700)
	os.WriteFile(filepath.Join(home, ".aws", "config"), []byte(fmt.Sprintf(
		"[profile A]\nregion = us-east-1\nendpoint_url = %s\n\n[profile B]\nregion = eu-west-1\nendpoint_url = %s\n",
		a.Endpoint(), b.Endpoint())), 0o600)
	os.WriteFile(filepath.Join(home, ".aws", "credentials"), []byte(
		"[A]\naws_access_key_id = AKIAFLEETA0000000001\naws_secret_access_key = secret-a\n\n"+
			"[B]\naws_access_key_id = AKIAFLEETB0000000002\naws_secret_access_key = secret-b\n"), 0o600)
	real, err := exec.LookPath("devgate")
	if err != nil {
		t.Fatal(err)
	}
	f.bin = filepath.Join(root, "bin", "devgate")
	os.MkdirAll(filepath.Dir(f.bin), 0o755)
	if err := os.Symlink(real, f.bin); err != nil {
		t.Fatal(err)
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PATH=") { // the symlink's directory first, as a package manager's bin dir
			kv = "PATH=" + filepath.Dir(f.bin) + ":" + strings.TrimPrefix(kv, "PATH=")
		}
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "XDG_") &&
			!strings.HasPrefix(kv, "DEVGATE_") && !strings.HasPrefix(kv, "SSH_AUTH_SOCK=") {
			f.environ = append(f.environ, kv)
		}
	}
	f.environ = append(f.environ, "HOME="+home, "XDG_CACHE_HOME="+filepath.Join(home, ".cache"),
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"))
	return f
}

func (f *fleet) run(ctx context.Context, t *testing.T, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = f.environ
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// ssh runs real ssh through ~/.ssh/config as a user would (ControlMaster and all).
func (f *fleet) ssh(ctx context.Context, t *testing.T, args ...string) (string, string, error) {
	return f.run(ctx, t, "ssh", append([]string{"-F", filepath.Join(f.home, ".ssh", "config"), "-o", "BatchMode=yes"}, args...)...)
}

func (f *fleet) sshG(t *testing.T, alias string) map[string]string {
	t.Helper()
	out, errs, err := f.run(context.Background(), t, "ssh", "-G", "-F", filepath.Join(f.home, ".ssh", "config"), alias)
	if err != nil {
		t.Fatalf("ssh -G %s: %v %s", alias, err, errs)
	}
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		k, v, _ := strings.Cut(l, " ")
		if _, dup := m[k]; !dup {
			m[k] = v
		}
	}
	return m
}

// TestE2EFleet: setup for two accounts/regions adds both sets; each host is
// reached by real ssh as its own OS user (tag, image), through a ControlPath
// that fits although HOME is 80 bytes; the user's block in ~/.ssh/config
// overrides User; ssh i-… works; cp needs no user@; a private address
// resolves; an instance replaced under the same Name is reached and its new
// host key pinned; the symlinked binary path is what ProxyCommand runs.
func TestE2EFleet(t *testing.T) {
	f := newFleet(t)
	ctx := ctxFor(t, 4*time.Minute)
	// ControlPersist masters outlive each ssh: stop them however the test ends (before the labs close).
	t.Cleanup(func() {
		for _, alias := range []string{"devbox-gpu1", "devbox-al1", "devbox-tagged", "devbox-custom", "devbox-b-cpu", "i-0b0000000000000b1"} {
			f.ssh(context.Background(), t, "-O", "exit", alias)
		}
	})
	// Run by its bare name, found on PATH through the symlink (Homebrew, nix): setup must keep that path.
	for _, args := range [][]string{{"setup", "--yes", "--profile", "A"}, {"setup", "--yes", "--profile", "B", "--prefix", "devbox-b"}} {
		if out, errs, err := f.run(ctx, t, "devgate", args...); err != nil {
			t.Fatalf("%v: %v\n%s\n%s", args, err, out, errs)
		}
	}
	// Run again: nothing changes (the second set did not disturb the first).
	if _, errs, err := f.run(ctx, t, "devgate", "setup", "--yes", "--profile", "A"); err != nil || !strings.Contains(errs, "nothing changed") {
		t.Fatalf("setup --profile A again: %v\n%s", err, errs)
	}
	managed, _ := os.ReadFile(filepath.Join(f.home, ".ssh", "devgate", "config"))
	if !strings.Contains(string(managed), "ProxyCommand "+f.bin+" connect") {
		t.Fatalf("ProxyCommand does not run the symlink %s:\n%s", f.bin, managed)
	}
	// Both sets are there, each host with its user, account and region.
	want := map[string][2]string{
		"devbox-gpu1":         {"ubuntu", "--profile A --region us-east-1"},
		"devbox-al1":          {"ec2-user", "--profile A --region us-east-1"},
		"devbox-tagged":       {"admin", "--profile A --region us-east-1"},
		"devbox-b-cpu":        {"admin", "--profile B --region eu-west-1"},
		"i-0b0000000000000b1": {"admin", "--profile B --region eu-west-1"},
	}
	for alias, w := range want {
		m := f.sshG(t, alias)
		if m["user"] != w[0] || !strings.HasSuffix(m["proxycommand"], w[1]) {
			t.Errorf("ssh -G %s: user %q proxycommand %q; want %s, %s", alias, m["user"], m["proxycommand"], w[0], w[1])
		}
		if cp := m["controlpath"]; len(cp) > 90 || !strings.HasPrefix(cp, fmt.Sprintf("/tmp/devgate-%d/", os.Getuid())) {
			t.Errorf("%s: controlpath %q (%d bytes)", alias, cp, len(cp))
		}
	}
	// The user's own block, written below devgate's Include, wins.
	uc, _ := os.OpenFile(filepath.Join(f.home, ".ssh", "config"), os.O_APPEND|os.O_WRONLY, 0)
	uc.WriteString("\nHost devbox-custom\n    User ubuntu\n")
	uc.Close()
	for alias, user := range map[string]string{"devbox-gpu1": "ubuntu", "devbox-al1": "ec2-user", "devbox-tagged": "admin",
		"devbox-custom": "ubuntu", "devbox-b-cpu": "admin", "i-0b0000000000000b1": "admin"} {
		out, errs, err := f.ssh(ctx, t, alias, "id", "-un")
		if err != nil || out != user+"\n" {
			t.Errorf("ssh %s: %q %v\n%s", alias, out, err, errs)
		}
	}
	// Connection sharing works through the short directory: the master answers.
	if _, errs, err := f.ssh(ctx, t, "-O", "check", "devbox-gpu1"); err != nil {
		t.Errorf("no ControlMaster for devbox-gpu1: %v %s", err, errs)
	}
	// cp after setup: no user@, no --profile (the host's from devgate's config).
	dst := filepath.Join(t.TempDir(), "passwd")
	if out, errs, err := f.run(ctx, t, f.bin, "cp", "-q", "devbox-b-cpu:/etc/passwd", dst); err != nil {
		t.Fatalf("cp: %v\n%s\n%s", err, out, errs)
	}
	if b, _ := os.ReadFile(dst); !bytes.Contains(b, []byte("admin:")) {
		t.Fatalf("cp copied %q", b)
	}
	// Private IP and private DNS name targets (account B's instance).
	for _, target := range []string{"10.1.0.5", "ip-10-1-0-5.ec2.internal"} {
		if _, errs, err := f.run(ctx, t, f.bin, "start", "--profile", "B", target); err != nil || !strings.Contains(errs, "i-0b0000000000000b1") {
			t.Errorf("start %s: %v\n%s", target, err, errs)
		}
	}

	// gpu1 is replaced: same Name, new id, new host key.
	f.ssh(ctx, t, "-O", "exit", "devbox-gpu1")
	old, _ := f.a.Instance("gpu1")
	if err := f.a.Terminate("gpu1"); err != nil {
		t.Fatal(err)
	}
	nu, err := f.a.Launch(ctx, lab.InstanceSpec{Name: "gpu1", Image: ubuntuAMI, User: "ubuntu"})
	if err != nil {
		t.Fatal(err)
	}
	// Without connection sharing so that connect's stderr reaches us (ControlPersist silences it).
	out, errs, err := f.ssh(ctx, t, "-o", "ControlMaster=no", "-o", "ControlPath=none", "-o", "ControlPersist=no", "devbox-gpu1", "echo", "replaced")
	if err != nil || out != "replaced\n" {
		t.Fatalf("ssh to the replaced devbox-gpu1: %q %v\n%s", out, err, errs)
	}
	if !strings.Contains(errs, "devbox-gpu1 now reaches "+nu.ID+" (it reached "+old.ID) {
		t.Errorf("the replacement was not said on stderr:\n%s", errs)
	}
	kh, _ := os.ReadFile(filepath.Join(f.home, ".ssh", "devgate", "known_hosts"))
	if !strings.Contains(string(kh), "devbox-gpu1 "+strings.TrimSpace(nu.HostKey)) || strings.Contains(string(kh), strings.TrimSpace(old.HostKey)) {
		t.Errorf("known_hosts after the replacement:\n%s\nwant the new key %s only", kh, nu.HostKey)
	}
	// Said once: the next connection is quiet about it.
	_, errs, err = f.ssh(ctx, t, "-o", "ControlMaster=no", "-o", "ControlPath=none", "-o", "ControlPersist=no", "devbox-gpu1", "true")
	if err != nil || strings.Contains(errs, "now reaches") {
		t.Errorf("second connection: %v\n%s", err, errs)
	}

	// setup --remove takes one set away and leaves the other.
	if _, errs, err := f.run(ctx, t, f.bin, "setup", "--yes", "--remove", "--prefix", "devbox-b"); err != nil {
		t.Fatalf("setup --remove: %v\n%s", err, errs)
	}
	if m := f.sshG(t, "devbox-b-cpu"); strings.Contains(m["proxycommand"], "--profile B") {
		t.Errorf("devbox-b-cpu still configured after --remove: %q", m["proxycommand"])
	}
	if m := f.sshG(t, "devbox-gpu1"); m["user"] != "ubuntu" || !strings.Contains(m["proxycommand"], "--profile A") {
		t.Errorf("devbox-gpu1 lost by removing devbox-b: %v", m)
	}
}

// TestE2ESetupTwoSetsOnePrefix: `devgate setup` with credentials from the
// environment (no profile), then `devgate setup --profile A` for the same
// account and region under the same prefix, as a user moving to profiles
// does. The first set's hosts keep their ProxyCommand without --profile (the
// second run does not re-point them through the prefix's entry), the prefix
// keeps its first set and the user given to it, the second set's aliases end
// in the profile (not in a region both share), and real ssh reaches each.
func TestE2ESetupTwoSetsOnePrefix(t *testing.T) {
	f := newFleet(t)
	ctx := ctxFor(t, 3*time.Minute)
	withEnv := append(append([]string(nil), f.environ...), f.a.Env()...)
	run := func(env []string, name string, args ...string) (string, string, error) {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = env
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		return o.String(), e.String(), err
	}
	sshArgs := func(args ...string) []string {
		return append([]string{"-F", filepath.Join(f.home, ".ssh", "config"), "-o", "BatchMode=yes"}, args...)
	}
	t.Cleanup(func() {
		for _, alias := range []string{"devbox-gpu1", "devbox-gpu1-a"} {
			run(withEnv, "ssh", sshArgs("-O", "exit", alias)...)
		}
	})
	if out, errs, err := run(withEnv, f.bin, "setup", "--yes", "--user", "ubuntu"); err != nil {
		t.Fatalf("setup (environment credentials): %v\n%s\n%s", err, out, errs)
	}
	_, errs, err := run(f.environ, f.bin, "setup", "--yes", "--profile", "A")
	if err != nil {
		t.Fatalf("setup --profile A: %v\n%s", err, errs)
	}
	if !strings.Contains(errs, "devbox-* (instances not listed yet) stays with no profile, region us-east-1") {
		t.Errorf("setup --profile A did not say the prefix stays with the first set:\n%s", errs)
	}
	first, second := f.sshG(t, "devbox-gpu1")["proxycommand"], f.sshG(t, "devbox-gpu1-a")["proxycommand"]
	if strings.Contains(first, "--profile") || !strings.HasSuffix(first, "--region us-east-1") {
		t.Errorf("the first set's host was re-pointed: %q", first)
	}
	if !strings.HasSuffix(second, "--profile A --region us-east-1") {
		t.Errorf("the second set's host: %q", second)
	}
	cfg, _ := os.ReadFile(filepath.Join(f.home, ".config", "devgate", "config.json"))
	var cf struct {
		Prefixes map[string]struct{ Profile, Region, User string }
	}
	if err := json.Unmarshal(cfg, &cf); err != nil {
		t.Fatal(err)
	}
	if p := cf.Prefixes["devbox"]; p.Profile != "" || p.Region != "us-east-1" || p.User != "ubuntu" {
		t.Errorf("prefix entry %+v, want the first set's, user ubuntu\n%s", p, cfg)
	}
	// Each alias is reached by real ssh: the first with the environment's
	// credentials (its set's), the second with profile A and nothing in the environment.
	if out, errs, err := run(withEnv, "ssh", sshArgs("devbox-gpu1", "id", "-un")...); err != nil || out != "ubuntu\n" {
		t.Errorf("ssh devbox-gpu1: %q %v\n%s", out, err, errs)
	}
	if out, errs, err := run(f.environ, "ssh", sshArgs("devbox-gpu1-a", "id", "-un")...); err != nil || out != "ubuntu\n" {
		t.Errorf("ssh devbox-gpu1-a: %q %v\n%s", out, err, errs)
	}
	// cp to the first set's alias resolves as its ProxyCommand does (no profile).
	dst := filepath.Join(t.TempDir(), "hostname")
	if out, errs, err := run(withEnv, f.bin, "cp", "-q", "devbox-gpu1:/etc/hostname", dst); err != nil {
		t.Errorf("cp devbox-gpu1: %v\n%s\n%s", err, out, errs)
	}
	// A name found nowhere says where it was looked for (the profile and region).
	if _, errs, err := run(f.environ, f.bin, "cp", "--profile", "A", "nosuch:/etc/hostname", dst); err == nil ||
		!strings.Contains(errs, `no instance named "nosuch" in region us-east-1, profile A`) {
		t.Errorf("cp --profile A nosuch:…: %v\n%s", err, errs)
	}
}
