package cli_test

// End-to-end tests: real ssh → devgate connect (this test binary, run as
// "devgate" by testscript.RunMain) → devgate-lab in-process → real sshd.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/devgate/devgate/internal/cli"
	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/faults"
	"github.com/devgate/devgate/internal/lab/labtest"
	"github.com/devgate/devgate/internal/lab/sftpfault"
	"github.com/devgate/devgate/internal/labcli"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		// The lab's sshd runs it as the sftp subsystem under the corrupt-chunk fault.
		sftpfault.Command: func() { os.Exit(sftpfault.Main(os.Args[1:])) },
		"devgate": func() {
			ctx, stop := cli.SignalContext(context.Background())
			code := cli.Main(ctx, os.Args[1:], cli.StdIO())
			stop()
			os.Exit(code)
		},
	})
}

// e2e is one lab with a HOME, an ssh config and an environment for devgate.
type e2e struct {
	l       *lab.Lab
	dir     string
	home    string
	config  string
	environ []string
}

func newE2E(t *testing.T, opts lab.Options) *e2e {
	t.Helper()
	l := labtest.Start(t, opts)
	e := &e2e{l: l, dir: t.TempDir(), home: t.TempDir()}
	key := filepath.Join(e.home, ".ssh", "devgate", "id_ed25519")
	if err := labcli.WriteFiles(e.dir, l, "devgate", key); err != nil {
		t.Fatal(err)
	}
	e.config = filepath.Join(e.dir, labcli.SSHConfigFile)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "XDG_") && !strings.HasPrefix(kv, "DEVGATE_") {
			e.environ = append(e.environ, kv)
		}
	}
	e.environ = append(e.environ, l.Env()...)
	e.environ = append(e.environ, "HOME="+e.home, "XDG_CACHE_HOME="+filepath.Join(e.home, ".cache"))
	return e
}

// ssh runs real ssh through the lab's ssh config.
func (e *e2e) ssh(ctx context.Context, stdin io.Reader, stdout io.Writer, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ssh", append([]string{"-F", e.config, "-o", "BatchMode=yes", "-o", "ConnectTimeout=60"}, args...)...)
	cmd.Env = e.environ
	cmd.Stdin = stdin
	cmd.Stdout = stdout
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	return stderr.String(), err
}

// devgate runs devgate itself (not through ssh).
func (e *e2e) devgate(ctx context.Context, stdin io.Reader, extraEnv []string, args ...string) (stdout, stderr string, code int) {
	cmd := exec.CommandContext(ctx, "devgate", args...)
	cmd.Env = append(append([]string(nil), e.environ...), extraEnv...)
	cmd.Stdin = stdin
	var o, er bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &er
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
	}
	return o.String(), er.String(), code
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestE2ECommandRuns(t *testing.T) {
	e := newE2E(t, lab.Options{})
	ctx := ctxFor(t, time.Minute)
	var out bytes.Buffer
	stderr, err := e.ssh(ctx, nil, &out, "gpu1", "echo", "hello from the devbox")
	if err != nil {
		t.Fatalf("ssh: %v\n%s", err, stderr)
	}
	if out.String() != "hello from the devbox\n" {
		t.Fatalf("stdout %q", out.String())
	}
	if !strings.Contains(stderr, "Connected in") {
		t.Errorf("no progress line on stderr: %q", stderr)
	}
	// The host key was pinned under the instance id.
	kh, err := os.ReadFile(filepath.Join(e.dir, labcli.KnownHosts))
	if err != nil || !strings.Contains(string(kh), e.inst(t, "gpu1")) {
		t.Fatalf("known_hosts %q %v", kh, err)
	}
}

func (e *e2e) inst(t *testing.T, name string) string {
	in, ok := e.l.Instance(name)
	if !ok {
		t.Fatalf("no instance %s", name)
	}
	return in.ID
}

func TestE2EStartsStoppedInstanceAndRidesOutTNC(t *testing.T) {
	f := labtest.Fast()
	f.BootDelay = 1500 * time.Millisecond
	f.AgentDelay = 1500 * time.Millisecond
	f.TNCWindow = 1500 * time.Millisecond
	e := newE2E(t, lab.Options{Faults: f})
	ctx := ctxFor(t, 2*time.Minute)
	var out bytes.Buffer
	stderr, err := e.ssh(ctx, nil, &out, "gpu2", "echo", "up")
	if err != nil {
		t.Fatalf("ssh: %v\n%s", err, stderr)
	}
	if out.String() != "up\n" {
		t.Fatalf("stdout %q", out.String())
	}
	for _, want := range []string{"Starting instance " + e.inst(t, "gpu2") + " (stopped)", "Waiting for SSM agent", "not yet accepting sessions", "Connected in"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if in, _ := e.l.Instance("gpu2"); in.State != "running" {
		t.Fatalf("gpu2 is %s", in.State)
	}
}

func TestE2EStdoutIsOnlyTheStream(t *testing.T) {
	e := newE2E(t, lab.Options{})
	ctx := ctxFor(t, time.Minute)
	// Keep stdin open until the banner arrived, then close it.
	pr, pw := io.Pipe()
	cmd := exec.CommandContext(ctx, "devgate", "connect", "gpu1", "22", "--user", "root")
	cmd.Env = e.environ
	cmd.Stdin = pr
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	banner := make([]byte, 8)
	if _, err := io.ReadFull(stdout, banner); err != nil {
		t.Fatalf("read: %v (stderr %s)", err, stderr.String())
	}
	pw.Close()
	rest, _ := io.ReadAll(stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("connect after stdin EOF: %v\n%s", err, stderr.String())
	}
	if !bytes.HasPrefix(banner, []byte("SSH-2.0-")) {
		t.Fatalf("stdout starts with %q, want SSH-2.0-", banner)
	}
	if !bytes.HasSuffix(append(banner, rest...), []byte("\r\n")) || bytes.Count(append(banner, rest...), []byte("\n")) != 1 {
		t.Fatalf("stdout held more than the sshd banner: %q", append(banner, rest...))
	}
	// stdin EOF ended the session in the lab (TerminateSession).
	deadline := time.Now().Add(5 * time.Second)
	for len(e.l.Mgs().Active()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("sessions still active after stdin EOF: %v", e.l.Mgs().Active())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestE2EParallelSSHPushOnce(t *testing.T) {
	e := newE2E(t, lab.Options{})
	ctx := ctxFor(t, 3*time.Minute)
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stderr, err := e.ssh(ctx, nil, io.Discard, "gpu1", "true")
			if err != nil {
				errs <- fmt.Errorf("ssh %d: %v\n%s", i, err, stderr)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if c := e.l.Calls("SendSSHPublicKey"); c != 1 {
		t.Fatalf("%d parallel connections pushed the key %d times, want once", n, c)
	}
	if c := e.l.Calls("StartSession"); c != n {
		t.Fatalf("StartSession called %d times, want %d", c, n)
	}
}

// randFile writes n pseudo-random bytes and returns the path and sha256.
func randFile(t *testing.T, n int64) (string, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "data.bin")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	r := rand.NewChaCha8([32]byte{7})
	if _, err := io.CopyN(io.MultiWriter(f, h), r, n); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p, hex.EncodeToString(h.Sum(nil))
}

func fileSum(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}

// copyBothWays moves size bytes up (ssh 'cat > f') and down (ssh 'cat f') and checks sha256.
func copyBothWays(t *testing.T, e *e2e, size int64) {
	ctx := ctxFor(t, 10*time.Minute)
	src, sum := randFile(t, size)
	up := filepath.Join(t.TempDir(), "up.bin")
	in, _ := os.Open(src)
	defer in.Close()
	if stderr, err := e.ssh(ctx, in, io.Discard, "gpu1", "cat > "+up); err != nil {
		t.Fatalf("upload: %v\n%s", err, stderr)
	}
	if got := fileSum(t, up); got != sum {
		t.Fatalf("uploaded file sha256 %s, want %s", got, sum)
	}
	h := sha256.New()
	if stderr, err := e.ssh(ctx, nil, h, "gpu1", "cat "+src); err != nil {
		t.Fatalf("download: %v\n%s", err, stderr)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		t.Fatalf("downloaded sha256 %s, want %s", got, sum)
	}
}

func TestE2ELargeCopyBothWays(t *testing.T) {
	e := newE2E(t, lab.Options{})
	copyBothWays(t, e, 256<<20)
}

func TestE2ELargeCopyWithDropsEvery5s(t *testing.T) {
	f := labtest.Fast()
	f.DropEvery = 5 * time.Second
	f.BandwidthCap = 24 << 20 // long enough a copy for several drops each way
	e := newE2E(t, lab.Options{Faults: f})
	copyBothWays(t, e, 256<<20)
	if d := e.l.Mgs().Drops(); d < 2 {
		t.Fatalf("only %d drops during the copies: the fault was not exercised", d)
	}
	t.Logf("%d WebSocket drops during the copies", e.l.Mgs().Drops())
}

// TestE2EFailureClasses: each failure class has its message, its exit code
// and nothing on stdout.
func TestE2EFailureClasses(t *testing.T) {
	slowBoot := labtest.Fast()
	slowBoot.BootDelay = time.Minute
	drops := labtest.Fast()
	drops.DropEvery = 300 * time.Millisecond
	specs := append(lab.DefaultInstances(), lab.InstanceSpec{Name: "old", State: "terminated"},
		lab.InstanceSpec{Name: "twin", State: "running"}, lab.InstanceSpec{Name: "twin", State: "running"})
	cases := []struct {
		name   string
		faults faults.Config
		setup  func(e *e2e)
		env    []string
		args   []string
		idle   bool // stdin stays open (an idle ssh)
		code   int
		stderr string
	}{
		{name: "credentials", env: []string{"AWS_SECRET_ACCESS_KEY=wrong"}, args: []string{"gpu1"}, code: 10, stderr: "credentials"},
		{name: "region", env: []string{"AWS_REGION=", "AWS_DEFAULT_REGION=", "AWS_CONFIG_FILE=/nonexistent"}, args: []string{"gpu1"}, code: 11, stderr: "no AWS region"},
		{name: "not found", args: []string{"nope"}, code: 12, stderr: `no instance named "nope"`},
		{name: "ambiguous name", args: []string{"twin"}, code: 12, stderr: `2 instances are named "twin"`},
		{name: "terminated", args: []string{"old"}, code: 13, stderr: "terminated"},
		{name: "start timeout", faults: slowBoot, args: []string{"gpu2", "--timeout", "2s"}, code: 14, stderr: "did not reach running"},
		{name: "agent offline", setup: func(e *e2e) { e.l.SetAgentOnline("gpu1", false) }, args: []string{"gpu1", "--timeout", "2s"}, code: 15, stderr: "did not come online"},
		{name: "key push refused", setup: func(e *e2e) { e.l.Deny("ec2-instance-connect:SendSSHPublicKey") }, args: []string{"gpu1"}, code: 16, stderr: "refused the key push"},
		{name: "session refused", setup: func(e *e2e) { e.l.Deny("ssm:StartSession") }, args: []string{"gpu1"}, code: 17, stderr: "StartSession was denied"},
		{name: "tunnel lost", faults: drops, setup: func(e *e2e) { e.l.Deny("ssm:ResumeSession") },
			args: []string{"gpu1", "--resume-timeout", "1s"}, idle: true, code: 18, stderr: "not resumed within"},
		// The credentials expire for good while the session runs: the resume
		// fails with a credentials error, not a network one.
		{name: "credentials expired during resume", faults: drops, setup: func(e *e2e) {
			go func() {
				for len(e.l.Mgs().Active()) == 0 {
					time.Sleep(20 * time.Millisecond)
				}
				e.l.ExpireCredentials("")
			}()
		}, args: []string{"gpu1", "--resume-timeout", "3s"}, idle: true, code: 10, stderr: "credentials have expired"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := c.faults
			if f == (faults.Config{}) {
				f = labtest.Fast()
			}
			e := newE2E(t, lab.Options{Faults: f, Instances: specs})
			if c.setup != nil {
				c.setup(e)
			}
			var stdin io.Reader = strings.NewReader("")
			if c.idle {
				r, w, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				defer w.Close()
				defer r.Close()
				stdin = r
			}
			args := append([]string{"connect", c.args[0], "22", "--user", "root"}, c.args[1:]...)
			stdout, stderr, code := e.devgate(ctxFor(t, time.Minute), stdin, c.env, args...)
			if code != c.code || !strings.Contains(stderr, c.stderr) {
				t.Fatalf("exit %d, want %d; stderr:\n%s\nwant it to contain %q", code, c.code, stderr, c.stderr)
			}
			if !strings.Contains(stderr, "hint:") {
				t.Errorf("no hint on stderr:\n%s", stderr)
			}
			if stdout != "" && !strings.HasPrefix(stdout, "SSH-2.0-") {
				t.Fatalf("stdout %q: only the stream may go there", stdout)
			}
			if c.code != 18 && !c.idle && stdout != "" {
				t.Fatalf("stdout %q on a failure before the stream", stdout)
			}
		})
	}
}
