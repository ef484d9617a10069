package cli_test

// The direct path (--path auto|direct|ssm) against the lab's VPN model:
// real ssh through the lab's ssh config, devgate connect as its
// ProxyCommand, the lab's private addresses relaying to the real sshd.

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labtest"
)

// viaDirect matches connect's line for a connection that went direct.
var viaDirect = regexp.MustCompile(`direct 127\.10\.\d+\.\d+:22 in \d+ ms`)

func (e *e2e) vpn(t *testing.T, state string) {
	t.Helper()
	if err := e.l.SetVPN(state); err != nil {
		t.Fatal(err)
	}
}

// patientBudget: with the VPN up the direct path wins as soon as it
// answers, so a long budget costs nothing and keeps a loaded machine from
// turning a slow loopback answer into a Session Manager fallback.
const patientBudget = "DEVGATE_DIRECT_BUDGET=30s"

// TestE2EDirectPathWithVPN: with the VPN up, ssh through the generated
// config goes direct (stderr says so, no data channel attaches in the lab,
// the StartSession of the race is terminated), cp copies byte-exact over
// parallel direct connections, and --path ssm still takes Session Manager.
func TestE2EDirectPathWithVPN(t *testing.T) {
	e := newE2E(t, lab.Options{})
	e.vpn(t, lab.VPNUp)
	e.environ = append(e.environ, patientBudget)
	ctx := ctxFor(t, 5*time.Minute)
	var out bytes.Buffer
	stderr, err := e.ssh(ctx, nil, &out, "gpu1", "echo", "direct hello")
	if err != nil {
		t.Fatalf("ssh: %v\n%s", err, stderr)
	}
	if out.String() != "direct hello\n" {
		t.Fatalf("stdout %q", out.String())
	}
	if !viaDirect.MatchString(stderr) {
		t.Fatalf("stderr does not say the connection went direct:\n%s", stderr)
	}
	if n := e.l.Mgs().Attached(); n != 0 {
		t.Fatalf("%d data channels attached; the direct path should use none", n)
	}
	if st := e.l.VPN(); st.Relayed != 1 {
		t.Fatalf("the VPN relayed %d connections, want 1", st.Relayed)
	}
	waitNoSessions(t, e)
	if s, t2 := e.l.Calls("StartSession"), e.l.Calls("TerminateSession"); s != t2 {
		t.Fatalf("%d StartSession, %d TerminateSession: the race's session was not terminated", s, t2)
	}

	// cp over parallel direct connections, byte-exact.
	src, sum := randFile(t, 256<<20)
	dst := filepath.Join(t.TempDir(), "down.bin")
	s := e.cp(t, ctx, nil, "-j", "4", "gpu1:"+src, dst)
	if s.Via != "direct" || s.Sessions != 4 {
		t.Fatalf("cp via %q over %d sessions, want direct over 4", s.Via, s.Sessions)
	}
	if got := fileSum(t, dst); got != sum {
		t.Fatalf("cp direct: sha256 %s, want %s", got, sum)
	}
	if n := e.l.Mgs().Attached(); n != 0 {
		t.Fatalf("cp attached %d data channels", n)
	}
	// A small file gets one direct session per 64 MiB, -j being the maximum.
	small, smallSum := randFile(t, 3<<20)
	s = e.cp(t, ctx, nil, "-j", "16", "gpu1:"+small, dst)
	if s.Via != "direct" || s.Sessions != 1 || fileSum(t, dst) != smallSum {
		t.Fatalf("cp -j 16 of 3 MiB direct: via %q over %d sessions (want 1), sum ok %v", s.Via, s.Sessions, fileSum(t, dst) == smallSum)
	}

	// --path ssm is obeyed with the VPN up.
	out.Reset()
	stderr, err = e.ssh(ctx, nil, &out, "-o", "ProxyCommand=devgate connect %h %p --user %r --path ssm", "gpu1", "echo", "ssm")
	if err != nil || out.String() != "ssm\n" {
		t.Fatalf("ssh --path ssm: %v %q\n%s", err, out.String(), stderr)
	}
	if viaDirect.MatchString(stderr) || e.l.Mgs().Attached() != 1 {
		t.Fatalf("--path ssm: attached %d, stderr:\n%s", e.l.Mgs().Attached(), stderr)
	}

	// A host's "path" in devgate's config is obeyed too (the ProxyCommand gets the instance id as %h).
	cfgFile := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(cfgFile, []byte(`{"hosts": {"gpu1": {"prefix": "devbox", "name": "gpu1", "id": "`+e.inst(t, "gpu1")+`", "path": "ssm"}}}`), 0o600)
	env := append([]string(nil), e.environ...)
	e.environ = append(e.environ, "DEVGATE_CONFIG="+cfgFile)
	out.Reset()
	stderr, err = e.ssh(ctx, nil, &out, "gpu1", "echo", "config")
	e.environ = env
	if err != nil || out.String() != "config\n" || viaDirect.MatchString(stderr) || e.l.Mgs().Attached() != 2 {
		t.Fatalf("host path ssm in the config: %v %q, attached %d\n%s", err, out.String(), e.l.Mgs().Attached(), stderr)
	}
}

// directSSH starts `ssh gpu1 'echo ready; cat'`, waits for its ready line and
// checks that it went direct. end waits up to a minute for ssh to exit and
// returns its stderr and error; if ssh is still running it closes ssh's stdin
// and fails the test, saying "still running a minute after <what>".
func (e *e2e) directSSH(t *testing.T, ctx context.Context) (stdin *os.File, end func(what string) (string, error)) {
	t.Helper()
	// Files, not io.Pipes: exec's copy goroutines would keep Wait waiting for our stdin.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pw.Close(); pr.Close() })
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { outR.Close() })
	done := make(chan error, 1)
	var stderr string
	go func() {
		var err error
		stderr, err = e.ssh(ctx, pr, outW, "gpu1", "echo ready; cat")
		outW.Close()
		done <- err
	}()
	// The session is up once the remote shell answered.
	ready := make([]byte, 6)
	if _, err := io.ReadFull(outR, ready); err != nil || string(ready) != "ready\n" {
		t.Fatalf("no ready line: %q %v", ready, err)
	}
	go io.Copy(io.Discard, outR)
	if e.l.VPN().Open != 1 {
		t.Fatalf("the session did not go direct (VPN %+v)", e.l.VPN())
	}
	return pw, func(what string) (string, error) {
		t.Helper()
		select {
		case err := <-done:
			return stderr, err
		case <-time.After(time.Minute):
			pw.Close()
			<-done
			t.Fatalf("ssh still running a minute after %s\n%s", what, stderr)
			return "", nil
		}
	}
}

func waitNoSessions(t *testing.T, e *e2e) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(e.l.Mgs().Active()) != 0 || e.l.Calls("StartSession") != e.l.Calls("TerminateSession") {
		if time.Now().After(deadline) {
			t.Fatalf("sessions left: active %v, %d StartSession, %d TerminateSession", e.l.Mgs().Active(),
				e.l.Calls("StartSession"), e.l.Calls("TerminateSession"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestE2EDirectPathVPNDown: with the VPN down, by refusal and by silence,
// ssh goes through Session Manager; after a silent direct path the next
// connect does not wait for the budget.
func TestE2EDirectPathVPNDown(t *testing.T) {
	const budget = 4 * time.Second
	for _, mode := range []string{lab.VPNRefuse, lab.VPNSilence} {
		t.Run(mode, func(t *testing.T) {
			e := newE2E(t, lab.Options{})
			e.vpn(t, mode)
			e.environ = append(e.environ, "DEVGATE_DIRECT_BUDGET="+budget.String())
			ctx := ctxFor(t, 3*time.Minute)
			connect := func() (string, time.Duration) {
				var out bytes.Buffer
				start := time.Now()
				stderr, err := e.ssh(ctx, nil, &out, "gpu1", "echo", "via ssm")
				took := time.Since(start)
				if err != nil || out.String() != "via ssm\n" {
					t.Fatalf("ssh: %v %q\n%s", err, out.String(), stderr)
				}
				if viaDirect.MatchString(stderr) || !strings.Contains(stderr, "; Session Manager") {
					t.Fatalf("stderr does not say Session Manager was taken:\n%s", stderr)
				}
				return stderr, took
			}
			first, took1 := connect()
			second, took2 := connect()
			switch mode {
			case lab.VPNRefuse:
				if !strings.Contains(first, "refused the connection; Session Manager") {
					t.Fatalf("first connect:\n%s", first)
				}
			case lab.VPNSilence:
				if !strings.Contains(first, "direct did not answer in 4000 ms; Session Manager") || took1 < budget {
					t.Fatalf("first connect took %s:\n%s", took1, first)
				}
				// The line says the budget timer was not started (how long the
				// connect took is for bench/, not for a test on a loaded machine).
				if !strings.Contains(second, "not waiting for it; Session Manager") {
					t.Fatalf("second connect (%s) waited for the direct path:\n%s", took2, second)
				}
			}
			if e.l.Mgs().Attached() != 2 {
				t.Fatalf("%d data channels attached, want 2", e.l.Mgs().Attached())
			}
		})
	}
}

// TestE2EDirectPathVPNDropsMidSession: the VPN drops under a direct ssh
// session; the session ends (TCP cannot move to another path) and the next
// connect falls back to Session Manager.
func TestE2EDirectPathVPNDropsMidSession(t *testing.T) {
	e := newE2E(t, lab.Options{})
	e.vpn(t, lab.VPNUp)
	e.environ = append(e.environ, patientBudget)
	ctx := ctxFor(t, 3*time.Minute)
	pw, end := e.directSSH(t, ctx)
	pw.Write([]byte("typing\n"))
	e.vpn(t, lab.VPNRefuse)
	stderr1, err := end("the VPN dropped")
	if err == nil {
		t.Fatalf("ssh exited 0 after the VPN dropped\n%s", stderr1)
	}
	if !regexp.MustCompile(`direct connection to 127\.10\.\d+\.\d+:22 closed by the network \(the VPN dropped`).MatchString(stderr1) {
		t.Fatalf("devgate did not say why the session ended:\n%s", stderr1)
	}
	var out bytes.Buffer
	stderr, err := e.ssh(ctx, nil, &out, "gpu1", "echo", "back")
	if err != nil || out.String() != "back\n" || !strings.Contains(stderr, "refused the connection; Session Manager") {
		t.Fatalf("after the drop: %v %q\n%s", err, out.String(), stderr)
	}

	// devgate connect itself exits 18 (tunnel lost) when the VPN drops under it.
	e.vpn(t, lab.VPNUp)
	cmd := exec.CommandContext(ctx, "devgate", "connect", e.inst(t, "gpu1"), "22", "--path", "direct")
	cmd.Env = e.environ
	stdin, err := cmd.StdinPipe() // kept open: ssh still running
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var connErr bytes.Buffer
	cmd.Stderr = &connErr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Connected once the SSH banner came through.
	banner, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(banner, "SSH-") {
		cmd.Wait()
		t.Fatalf("devgate connect --path direct: %q %v\n%s", banner, err, connErr.String())
	}
	e.vpn(t, lab.VPNRefuse)
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case <-waited:
		if code := cmd.ProcessState.ExitCode(); code != 18 || !strings.Contains(connErr.String(), "closed by the network") {
			t.Fatalf("connect after the VPN dropped: exit %d\n%s", code, connErr.String())
		}
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		<-waited
		t.Fatal("devgate connect still running a minute after the VPN dropped")
	}
}

// TestE2EDirectPathHostKeyPinned: a machine answering on the instance's
// private address with another host key is refused, by ssh (HostKeyAlias
// under the instance id) and by cp's in-process ssh.
func TestE2EDirectPathHostKeyPinned(t *testing.T) {
	e := newE2E(t, lab.Options{})
	ctx := ctxFor(t, 3*time.Minute)
	// The first connection (VPN down) pins the real host key under the instance id.
	if stderr, err := e.ssh(ctx, nil, io.Discard, "gpu1", "true"); err != nil {
		t.Fatalf("ssh: %v\n%s", err, stderr)
	}
	src, _ := randFile(t, 1<<10)
	e.cp(t, ctx, nil, "gpu1:"+src, filepath.Join(t.TempDir(), "pin"))
	// An impostor: another lab's sshd (another host key) on gpu1's private address.
	other := labtest.Start(t, lab.Options{})
	o1, _ := other.Instance("gpu1")
	gpu1, _ := e.l.Instance("gpu1")
	ln, err := net.Listen("tcp", net.JoinHostPort(gpu1.PrivateIP, "22"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(o1.SSHPort)))
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	stderr, err := e.ssh(ctx, nil, io.Discard, "-o", "ProxyCommand=devgate connect %h %p --user %r --path direct", "gpu1", "true")
	if err == nil || !viaDirect.MatchString(stderr) || !strings.Contains(stderr, "REMOTE HOST IDENTIFICATION HAS CHANGED") {
		t.Fatalf("ssh to an impostor: err %v\n%s", err, stderr)
	}
	msg, code := e.cpFail(t, ctx, "--path", "direct", "gpu1:"+src, filepath.Join(t.TempDir(), "x"))
	if code == 0 || !strings.Contains(msg, "host key") {
		t.Fatalf("cp to an impostor: exit %d\n%s", code, msg)
	}
}

// TestE2EForwardDirect: with the VPN up, devgate forward dials the
// instance's private address once per local connection; no session is used.
func TestE2EForwardDirect(t *testing.T) {
	p := httpOnInstance(t)
	e := newE2E(t, lab.Options{VPNPorts: []int{p}})
	e.vpn(t, lab.VPNUp)
	e.environ = append(e.environ, patientBudget)
	ctx := ctxFor(t, 2*time.Minute)
	cmd := exec.CommandContext(ctx, "devgate", "forward", "gpu1", "0:"+strconv.Itoa(p))
	cmd.Env = e.environ
	stdout, _ := cmd.StdoutPipe()
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() {
		t.Fatalf("no URL line; stderr:\n%s", stderr.String())
	}
	url := strings.Fields(sc.Text())[0]
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for i := range 3 {
		resp, err := client.Get(url + "/n/" + strconv.Itoa(100000+i))
		if err != nil {
			t.Fatalf("GET %s: %v\n%s", url, err, stderr.String())
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if len(b) != 100000+i {
			t.Fatalf("GET %d: %d bytes", i, len(b))
		}
	}
	if !regexp.MustCompile(`direct 127\.10\.\d+\.\d+:` + strconv.Itoa(p) + ` in \d+ ms`).MatchString(stderr.String()) {
		t.Fatalf("stderr does not say forward went direct:\n%s", stderr.String())
	}
	if n := e.l.Mgs().Attached(); n != 0 {
		t.Fatalf("%d data channels attached", n)
	}
	if r := e.l.VPN().Relayed; r < 4 { // the first (probe) connection and one per request
		t.Fatalf("the VPN relayed %d connections, want at least 4", r)
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("forward after SIGINT: %v\n%s", err, stderr.String())
	}
}

// TestE2EDirectPathHeadStart: once the direct path has answered, the next
// auto connect gives it a head start and calls no StartSession at all (the
// lab counts none); when the VPN then goes down, by silence or by refusal,
// the connect still falls back to Session Manager.
func TestE2EDirectPathHeadStart(t *testing.T) {
	e := newE2E(t, lab.Options{})
	e.vpn(t, lab.VPNUp)
	// Head start 2 s: loopback answers long before, even on a loaded machine.
	e.environ = append(e.environ, "DEVGATE_DIRECT_BUDGET=4s")
	ctx := ctxFor(t, 3*time.Minute)
	connect := func(want string, args ...string) string {
		t.Helper()
		var out bytes.Buffer
		stderr, err := e.ssh(ctx, nil, &out, append(args, "gpu1", "echo", "hi")...)
		if err != nil || out.String() != "hi\n" {
			t.Fatalf("ssh: %v %q\n%s", err, out.String(), stderr)
		}
		if want == "direct" && !viaDirect.MatchString(stderr) || want != "direct" && !strings.Contains(stderr, want) {
			t.Fatalf("stderr does not say %q:\n%s", want, stderr)
		}
		return stderr
	}
	connect("direct") // nothing remembered: raced against StartSession
	waitNoSessions(t, e)
	started := e.l.Calls("StartSession")
	second := connect("direct")
	if !strings.Contains(second, "Trying the direct path (it answered") {
		t.Fatalf("second connect did not give direct a head start:\n%s", second)
	}
	if n := e.l.Calls("StartSession"); n != started {
		t.Fatalf("%d StartSession calls for a connect that went direct with a head start, want 0", n-started)
	}

	e.vpn(t, lab.VPNSilence)
	connect("direct did not answer in 4000 ms; Session Manager")
	if n := e.l.Calls("StartSession"); n != started+1 {
		t.Fatalf("%d StartSession calls for the fallback, want 1", n-started)
	}

	e.vpn(t, lab.VPNUp)
	// A direct answer clears the failure (auto, which does not wait for direct
	// for a while after a failure, may take Session Manager here).
	connect("direct", "-o", "ProxyCommand=devgate connect %h %p --user %r --path direct")
	e.vpn(t, lab.VPNRefuse)
	third := connect("refused the connection; Session Manager")
	if !strings.Contains(third, "Trying the direct path (it answered") {
		t.Fatalf("the connect after a direct answer did not give direct a head start:\n%s", third)
	}
	waitNoSessions(t, e)
	if e.l.Mgs().Attached() != 2 {
		t.Fatalf("%d data channels attached, want 2 (the two fallbacks)", e.l.Mgs().Attached())
	}
}

// TestE2EDirectPathFailureClearedWhenSessionManagerWins: after a remembered
// direct failure auto does not wait for direct, so Session Manager may win
// the race once the VPN is back; the direct attempt it raced still runs to
// its answer in the background, and that answer clears the failure: the
// next connect goes direct (README: "A direct answer clears it").
func TestE2EDirectPathFailureClearedWhenSessionManagerWins(t *testing.T) {
	e := newE2E(t, lab.Options{})
	e.environ = append(e.environ, patientBudget)
	ctx := ctxFor(t, 3*time.Minute)
	connect := func(cmd string) string {
		t.Helper()
		var out bytes.Buffer
		stderr, err := e.ssh(ctx, nil, &out, "gpu1", cmd)
		if err != nil || out.String() != "hi\n" {
			t.Fatalf("ssh: %v %q\n%s", err, out.String(), stderr)
		}
		return stderr
	}
	if first := connect("echo hi"); !strings.Contains(first, "refused the connection; Session Manager") {
		t.Fatalf("first connect (VPN down):\n%s", first)
	}
	e.vpn(t, lab.VPNUp)
	// The session lasts a second: time for the raced direct attempt to answer.
	second := connect("echo hi; sleep 1")
	if !viaDirect.MatchString(second) && !strings.Contains(second, "not waiting for it; Session Manager") {
		t.Fatalf("second connect:\n%s", second)
	}
	if third := connect("echo hi"); !viaDirect.MatchString(third) {
		t.Fatalf("the connect after a direct answer did not go direct (second connect:\n%s)\nthird:\n%s", second, third)
	}
	waitNoSessions(t, e)
}

// TestE2EDirectPathInstanceStopped: stopping the instance (StopInstances)
// under a direct ssh session ends it, as EC2 shutting the OS down would,
// and devgate says why.
func TestE2EDirectPathInstanceStopped(t *testing.T) {
	e := newE2E(t, lab.Options{})
	e.vpn(t, lab.VPNUp)
	e.environ = append(e.environ, patientBudget)
	ctx := ctxFor(t, 3*time.Minute)
	_, end := e.directSSH(t, ctx)
	if err := e.l.StopInstance("gpu1"); err != nil {
		t.Fatal(err)
	}
	if stderr, err := end("the instance was stopped"); err == nil || !strings.Contains(stderr, "closed by the network") {
		t.Fatalf("ssh after StopInstances: %v\n%s", err, stderr)
	}
	if st := e.l.VPN(); st.Open != 0 {
		t.Fatalf("VPN %+v after the stop, want nothing open", st)
	}
}

// TestE2EDirectPathBeforeAgent: auto starts a stopped instance and, with the
// VPN up, connects straight to it as soon as sshd answers, without waiting
// for the SSM agent to report Online (here it never does within the test):
// no StartSession at all.
func TestE2EDirectPathBeforeAgent(t *testing.T) {
	f := labtest.Fast()
	f.BootDelay = 500 * time.Millisecond
	f.AgentDelay = 10 * time.Minute
	e := newE2E(t, lab.Options{Faults: f})
	e.vpn(t, lab.VPNUp)
	e.environ = append(e.environ, "DEVGATE_DIRECT_BUDGET=3s")
	ctx := ctxFor(t, 2*time.Minute)
	var out bytes.Buffer
	stderr, err := e.ssh(ctx, nil, &out, "gpu2", "echo", "up")
	if err != nil || out.String() != "up\n" {
		t.Fatalf("ssh: %v %q\n%s", err, out.String(), stderr)
	}
	for _, want := range []string{"Starting instance " + e.inst(t, "gpu2") + " (stopped)", "answered before the SSM agent was online"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if !viaDirect.MatchString(stderr) {
		t.Errorf("stderr does not say the connection went direct:\n%s", stderr)
	}
	// The one StartSession is the warm attempt that found the instance stopped.
	if n := e.l.Calls("StartSession"); n > 1 || e.l.Mgs().Attached() != 0 {
		t.Errorf("%d StartSession calls, %d data channels attached; want at most the warm attempt's, none attached", n, e.l.Mgs().Attached())
	}
}
