package doctor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/sshconfig"
	"github.com/devgate/devgate/internal/sshkey"
	"github.com/devgate/devgate/internal/vscode"
)

// fakeAWS is an in-process stand-in for the AWS interface (unit tests of
// this package only).
type fakeAWS struct {
	identityErr error
	banner      string
	date        time.Time
	denied      map[string]bool
	state       string
	ping, ver   string
	pushErr     error
}

func (f *fakeAWS) Region() string { return "us-east-1" }
func (f *fakeAWS) Identity(context.Context) (string, error) {
	return "arn:aws:iam::123456789012:user/dev", f.identityErr
}
func (f *fakeAWS) ServerDate() time.Time { return f.date }
func (f *fakeAWS) Probe(_ context.Context, action, _ string) error {
	if f.denied[action] {
		return exitcode.New(exitcode.Permission, "grant "+action, "%s was denied", action)
	}
	return nil
}
func (f *fakeAWS) Instance(_ context.Context, target string) (string, string, error) {
	if f.state == "" {
		return "", "", exitcode.New(exitcode.NotFound, "run devgate ls", "no instance named %q", target)
	}
	return "i-0123456789abcdef0", f.state, nil
}
func (f *fakeAWS) Agent(context.Context, string) (string, string, error) { return f.ping, f.ver, nil }
func (f *fakeAWS) PushKey(context.Context, string, string, string) error { return f.pushErr }
func (f *fakeAWS) SSHBanner(context.Context, string) (string, error) {
	if f.banner == "" {
		return "SSH-2.0-OpenSSH_9.2p1", nil
	}
	return f.banner, nil
}

var now = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func healthy() *fakeAWS {
	return &fakeAWS{date: now.Add(2 * time.Second), state: "running", ping: "Online", ver: "3.3.1142.0"}
}

func byName(rs []Result) map[string]Result {
	m := map[string]Result{}
	for _, r := range rs {
		m[r.Name] = r
	}
	return m
}

// onlyFailure asserts that exactly the named check failed (others may be
// skipped because of it) and returns it.
func onlyFailure(t *testing.T, rs []Result, name string) Result {
	t.Helper()
	var got Result
	for _, r := range rs {
		if !r.OK && !r.Skipped {
			if r.Name != name {
				t.Errorf("unexpected failure %q: %s", r.Name, r.Detail)
			}
			got = r
		}
	}
	if got.Name != name {
		t.Fatalf("%q did not fail: %+v", name, rs)
	}
	if got.Fix == "" {
		t.Errorf("%q has no fix", name)
	}
	if !Failed(rs) {
		t.Error("Failed() = false")
	}
	return got
}

func run(a AWS) []Result {
	return Run(context.Background(), AWSChecks(a, func() time.Time { return now }, "gpu1", "ec2-user", "ssh-ed25519 AAAA x"))
}

func TestAWSHealthy(t *testing.T) {
	rs := run(healthy())
	if Failed(rs) {
		t.Fatalf("%+v", rs)
	}
	if len(rs) != 10 || rs[3].Name != "instance gpu1" || rs[9].Name != "SSM session to port 22" {
		t.Fatalf("order: %+v", rs)
	}
}

func TestStoppedInstance(t *testing.T) {
	a := healthy()
	a.state = "stopped"
	r := onlyFailure(t, run(a), "instance gpu1")
	if !strings.Contains(r.Fix, "devgate start gpu1") {
		t.Fatalf("fix %q", r.Fix)
	}
	if m := byName(run(a)); !m["SSM agent"].Skipped || !m["test key push"].Skipped {
		t.Fatal("agent/key push not skipped for a stopped instance")
	}
}

func TestAgentOffline(t *testing.T) {
	a := healthy()
	a.ping = "ConnectionLost"
	r := onlyFailure(t, run(a), "SSM agent")
	if !strings.Contains(r.Detail, "ConnectionLost") {
		t.Fatal(r.Detail)
	}
	a.ping = ""
	onlyFailure(t, run(a), "SSM agent")
	a.ping, a.ver = "Online", "3.0.196.0" // not above the mux threshold
	if r := onlyFailure(t, run(a), "SSM agent"); !strings.Contains(r.Fix, "update the agent") {
		t.Fatal(r.Fix)
	}
}

func TestWrongSecretKey(t *testing.T) {
	a := healthy()
	a.identityErr = exitcode.Wrap(errors.New("api error SignatureDoesNotMatch: The request signature we calculated does not match"), exitcode.Credentials, "check your AWS credentials", "AWS rejected the credentials")
	r := onlyFailure(t, run(a), "AWS credentials")
	if !strings.Contains(r.Detail, "SignatureDoesNotMatch") {
		t.Fatal(r.Detail)
	}
	if m := byName(run(a)); !m["instance gpu1"].Skipped || !m["permission ec2:DescribeInstances"].Skipped {
		t.Fatal("dependent checks ran")
	}
}

func TestClockSkewAndPermission(t *testing.T) {
	a := healthy()
	a.date = now.Add(-10 * time.Minute)
	onlyFailure(t, run(a), "clock skew")
	a = healthy()
	a.denied = map[string]bool{"ssm:DescribeInstanceInformation": true}
	onlyFailure(t, run(a), "permission ssm:DescribeInstanceInformation")
	a = healthy()
	a.pushErr = errors.New("AccessDenied")
	onlyFailure(t, run(a), "test key push")
}

func TestKeyMode0644(t *testing.T) {
	home := t.TempDir()
	k, err := sshkey.Ensure(sshkey.DefaultPath(home))
	if err != nil {
		t.Fatal(err)
	}
	if rs := Run(context.Background(), []Check{KeyPermissions(k.Path)}); Failed(rs) {
		t.Fatalf("0600: %+v", rs)
	}
	os.Chmod(k.Path, 0o644)
	r := onlyFailure(t, Run(context.Background(), []Check{KeyPermissions(k.Path)}), "key permissions")
	if !strings.Contains(r.Fix, "chmod 600") {
		t.Fatal(r.Fix)
	}
}

func TestSSHVersionReal(t *testing.T) {
	rs := Run(context.Background(), []Check{SSHVersion("ssh")})
	if Failed(rs) || !strings.Contains(rs[0].Detail, "OpenSSH") {
		t.Fatalf("%+v", rs)
	}
	if rs := Run(context.Background(), []Check{SSHVersion(filepath.Join(t.TempDir(), "no-ssh"))}); !Failed(rs) {
		t.Fatal("missing ssh passed")
	}
}

// writeSetup writes the managed config and Include under home, as setup does.
func writeSetup(t *testing.T, home string) {
	t.Helper()
	cs, err := sshconfig.Plan(sshconfig.Options{GOOS: "linux", Home: home, Binary: "/usr/local/bin/devgate"},
		[]sshconfig.Instance{{Name: "gpu1", ID: "i-0123456789abcdef0"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if _, err := c.Apply(now); err != nil {
			t.Fatal(err)
		}
	}
}

func sshChecks(home, goos string) []Check {
	sc := &SSHConfig{Alias: "devbox-gpu1", GOOS: goos, ConfigFile: sshconfig.UserConfigPath(home), Env: append(os.Environ(), "HOME="+home)}
	return []Check{sc.Resolves(), sc.ControlPathLength()}
}

func shortTemp(t *testing.T) string {
	d, err := os.MkdirTemp("/tmp", "dg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func TestSSHResolvesAndControlPath(t *testing.T) {
	home := shortTemp(t) // t.TempDir() itself is too long for a socket path
	writeSetup(t, home)
	if rs := Run(context.Background(), sshChecks(home, "linux")); Failed(rs) {
		t.Fatalf("%+v", rs)
	}
	// A home so long that ~/.ssh/devgate/cm/%C would exceed the limit: the managed file uses the
	// short directory and passes; a long ControlPath the user set for the host fails.
	long := filepath.Join(t.TempDir(), strings.Repeat("d", 40))
	writeSetup(t, long)
	if rs := Run(context.Background(), sshChecks(long, "linux")); Failed(rs) {
		t.Fatalf("long home with the short ControlMaster directory: %+v", rs)
	}
	f, _ := os.OpenFile(sshconfig.UserConfigPath(long), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("Host devbox-gpu1\n    ControlPath " + long + "/.ssh/cm/%C\n")
	f.Close()
	r := onlyFailure(t, Run(context.Background(), sshChecks(long, "linux")), "ControlPath length")
	if !strings.Contains(r.Detail, "bytes") {
		t.Fatal(r.Detail)
	}
	// Without the Include, the alias has no ProxyCommand.
	bare := t.TempDir()
	os.MkdirAll(filepath.Join(bare, ".ssh"), 0o700)
	os.WriteFile(sshconfig.UserConfigPath(bare), []byte("Host *\n  User x\n"), 0o600)
	onlyFailure(t, Run(context.Background(), sshChecks(bare, "linux")), "ssh -G devbox-gpu1")
}

func TestVSCodeSettingsCheck(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "settings.json")
	os.WriteFile(p, []byte("{}"), 0o600)
	products := []vscode.Product{{Name: "Code", Path: p}}
	onlyFailure(t, Run(context.Background(), []Check{VSCodeSettings(products, os.ReadFile, 120, []string{"devbox-gpu1"})}), "VS Code settings")
	b, _ := vscode.Merge([]byte("{}"), 120, []string{"devbox-gpu1"})
	os.WriteFile(p, b, 0o600)
	if rs := Run(context.Background(), []Check{VSCodeSettings(products, os.ReadFile, 120, []string{"devbox-gpu1"})}); Failed(rs) {
		t.Fatalf("%+v", rs)
	}
}

func TestSessionBanner(t *testing.T) {
	a := healthy()
	a.banner = "HTTP/1.1 400 Bad Request"
	rs := run(a)
	last := rs[len(rs)-1]
	if last.Name != "SSM session to port 22" || last.OK || !strings.Contains(last.Fix, "sshd") {
		t.Fatalf("a non-SSH banner passed: %+v", last)
	}
	a = healthy()
	a.ping = "ConnectionLost"
	if last := run(a)[9]; !last.Skipped {
		t.Fatalf("session check ran with the agent offline: %+v", last)
	}
}

// TestProxyCommandBinary: the program the alias's ProxyCommand runs must
// exist (a package-manager upgrade removes versioned paths).
func TestProxyCommandBinary(t *testing.T) {
	home := shortTemp(t)
	writeSetup(t, home) // ProxyCommand /usr/local/bin/devgate, which does not exist here
	sc := &SSHConfig{Alias: "devbox-gpu1", GOOS: "linux", ConfigFile: sshconfig.UserConfigPath(home), Env: append(os.Environ(), "HOME="+home)}
	rs := Run(context.Background(), []Check{sc.ProxyCommandBinary()})
	if !Failed(rs) || !strings.Contains(rs[0].Detail, "/usr/local/bin/devgate") || !strings.Contains(rs[0].Fix, "devgate setup") {
		t.Fatalf("missing binary passed: %+v", rs)
	}
	// The user's own ProxyCommand for the host, quoted, to a program that exists.
	f, _ := os.OpenFile(sshconfig.UserConfigPath(home), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("Host devbox-gpu1\n    ProxyCommand '/bin/sh' -c 'exec nc %h %p'\n")
	f.Close()
	sc = &SSHConfig{Alias: "devbox-gpu1", GOOS: "linux", ConfigFile: sshconfig.UserConfigPath(home), Env: append(os.Environ(), "HOME="+home)}
	if rs := Run(context.Background(), []Check{sc.ProxyCommandBinary()}); Failed(rs) || rs[0].Detail != "/bin/sh" {
		t.Fatalf("existing binary: %+v", rs)
	}
}
