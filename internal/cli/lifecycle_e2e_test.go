package cli_test

// Every way a session ends must end it on the service (issue 11): ssh's
// SIGHUP to its ProxyCommand after `ssh true`, `ssh -O exit` of a
// ControlMaster, a failed authentication, SIGTERM to ssh, SIGHUP to
// `devgate forward`. The lab counts the client's terminates and the
// sessions left open, and the instance's sshd must have no connection left.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/lab"
)

// waitEnded waits until the lab saw n client terminates, no session is
// open and gpu1's sshd has no connection left; it fails on a session ended
// by the idle timeout.
func (e *e2e) waitEnded(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c := e.l.Mgs().Counts()
		conns, err := e.l.SSHDConnections("gpu1")
		if err != nil {
			t.Fatal(err)
		}
		if c.ClientTerminated == n && c.Open == 0 && conns == 0 {
			if c.EndedByTimeout != 0 || c.Started != n {
				t.Fatalf("lab counts: %v", c)
			}
			t.Logf("lab counts: %v; sshd connections 0", c)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: lab counts %v, sshd connections %d; want %d terminated by the client, 0 open, 0 connections", c, conns, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sshCmd is real ssh through the lab's config with stdout and stderr in
// files (a daemonised ControlMaster keeps pipes open).
func (e *e2e) sshCmd(t *testing.T, ctx context.Context, args ...string) (*exec.Cmd, func() string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "ssh", append([]string{"-F", e.config, "-o", "BatchMode=yes", "-o", "ConnectTimeout=60"}, args...)...)
	cmd.Env = e.environ
	f, err := os.CreateTemp(t.TempDir(), "ssh-stderr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	cmd.Stderr = f
	return cmd, func() string { b, _ := os.ReadFile(f.Name()); return string(b) }
}

func TestE2ESSHTrueEndsSessions(t *testing.T) {
	e := newE2E(t, lab.Options{})
	ctx := ctxFor(t, 3*time.Minute)
	const n = 20
	for i := range n {
		cmd, stderr := e.sshCmd(t, ctx, "gpu1", "true")
		if err := cmd.Run(); err != nil {
			t.Fatalf("ssh %d: %v\n%s", i, err, stderr())
		}
	}
	e.waitEnded(t, n)
}

func TestE2EControlMasterExitEndsSessions(t *testing.T) {
	e := newE2E(t, lab.Options{})
	ctx := ctxFor(t, 3*time.Minute)
	// A short directory: a ControlPath must fit in a Unix socket address.
	dir, err := os.MkdirTemp("", "cm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cp := "ControlPath=" + filepath.Join(dir, "%C")
	const n = 5
	for i := range n {
		cmd, stderr := e.sshCmd(t, ctx, "-o", "ControlMaster=auto", "-o", cp, "-o", "ControlPersist=10m", "gpu1", "echo", "via master")
		cmd.Stdout = nil
		out, err := cmd.Output()
		if err != nil || string(out) != "via master\n" {
			t.Fatalf("ssh %d: %q %v\n%s", i, out, err, stderr())
		}
		if c := e.l.Mgs().Counts(); c.Open != 1 {
			t.Fatalf("master %d: %v; want its session open", i, c)
		}
		exit, stderr := e.sshCmd(t, ctx, "-o", cp, "-O", "exit", "gpu1")
		if err := exit.Run(); err != nil {
			t.Fatalf("ssh -O exit %d: %v\n%s", i, err, stderr())
		}
		e.waitEnded(t, int64(i+1))
	}
}

func TestE2EFailedAuthEndsSessions(t *testing.T) {
	e := newE2E(t, lab.Options{})
	ctx := ctxFor(t, 3*time.Minute)
	const n = 5
	for i := range n {
		// The key is pushed for a user sshd does not allow: authentication fails.
		cmd, stderr := e.sshCmd(t, ctx, "-l", "nobody", "gpu1", "true")
		err := cmd.Run()
		if err == nil || !strings.Contains(stderr(), "Permission denied") {
			t.Fatalf("ssh %d as nobody: %v\n%s", i, err, stderr())
		}
	}
	e.waitEnded(t, n)
}

func TestE2ESigtermToSSHEndsSessions(t *testing.T) {
	e := newE2E(t, lab.Options{})
	ctx := ctxFor(t, 3*time.Minute)
	const n = 5
	for i := range n {
		cmd, stderr := e.sshCmd(t, ctx, "gpu1", "echo ready; sleep 120")
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || line != "ready\n" {
			t.Fatalf("ssh %d: %q %v\n%s", i, line, err, stderr())
		}
		cmd.Process.Signal(syscall.SIGTERM)
		go io.Copy(io.Discard, out)
		cmd.Wait()
		e.waitEnded(t, int64(i+1))
	}
}

// echoOnInstance serves TCP echo on 127.0.0.1 (the instance's localhost) and returns its port.
func echoOnInstance(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestE2ESighupToForwardEndsSessions(t *testing.T) {
	e := newE2E(t, lab.Options{})
	ctx := ctxFor(t, 3*time.Minute)
	port := echoOnInstance(t)
	const n = 5
	for i := range n {
		cmd := exec.CommandContext(ctx, "devgate", "forward", "gpu1", fmt.Sprintf("0:%d", port))
		cmd.Env = e.environ
		stdout, _ := cmd.StdoutPipe()
		f, err := os.CreateTemp(t.TempDir(), "stderr")
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = f
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil {
			t.Fatalf("forward %d: no URL line: %v", i, err)
		}
		addr := strings.TrimPrefix(strings.Fields(line)[0], "http://")
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		// A connection in flight: echoed once, then left open.
		fmt.Fprintf(c, "ping %d\n", i)
		if got, err := bufio.NewReader(c).ReadString('\n'); err != nil || got != fmt.Sprintf("ping %d\n", i) {
			t.Fatalf("echo through forward: %q %v", got, err)
		}
		cmd.Process.Signal(syscall.SIGHUP)
		werr := cmd.Wait()
		c.Close()
		errs, _ := os.ReadFile(f.Name())
		if werr != nil {
			t.Fatalf("forward %d after SIGHUP: %v\n%s", i, werr, errs)
		}
		if !strings.Contains(string(errs), "sessions terminated") {
			t.Errorf("forward %d stderr:\n%s", i, errs)
		}
		c2 := e.l.Mgs().Counts()
		if c2.ClientTerminated != int64(i+1) || c2.Open != 0 {
			t.Fatalf("forward %d exited with %v", i, c2)
		}
	}
	if c := e.l.Mgs().Counts(); c.EndedByTimeout != 0 || c.Started != n {
		t.Fatalf("lab counts %v", c)
	}
}

// startConnect runs devgate connect to gpu1 and returns once sshd's banner came through.
func (e *e2e) startConnect(t *testing.T, ctx context.Context, extra ...string) (cmd *exec.Cmd, stdin io.WriteCloser, stdout io.ReadCloser, stderr func() string) {
	t.Helper()
	cmd = exec.CommandContext(ctx, "devgate", append([]string{"connect", "gpu1", "22", "--user", e.user(t)}, extra...)...)
	cmd.Env = e.environ
	stdin, _ = cmd.StdinPipe()
	stdout, _ = cmd.StdoutPipe()
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	stderr = func() string { b, _ := os.ReadFile(f.Name()); return string(b) }
	banner := make([]byte, 8)
	if _, err := io.ReadFull(stdout, banner); err != nil || string(banner) != "SSH-2.0-" {
		t.Fatalf("no banner: %q %v\n%s", banner, err, stderr())
	}
	return cmd, stdin, stdout, stderr
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestE2EStdoutClosedEndsSession: ssh gone (stdout closed, EPIPE) ends the
// session on the service; SIGPIPE does not kill devgate first.
func TestE2EStdoutClosedEndsSession(t *testing.T) {
	e := newE2E(t, lab.Options{})
	ctx := ctxFor(t, time.Minute)
	cmd, stdin, stdout, stderr := e.startConnect(t, ctx)
	stdout.Close()
	// Our banner makes sshd answer with its KEXINIT: devgate writes to the closed stdout.
	io.WriteString(stdin, "SSH-2.0-OpenSSH_9.2\r\n")
	err := cmd.Wait()
	if code := exitCode(err); code != 0 {
		t.Fatalf("exit %d (%v) after stdout closed\n%s", code, err, stderr())
	}
	e.waitEnded(t, 1)
}

// TestE2ETerminateIsBounded: with TerminateSession answering after a
// minute, a signal still ends devgate within seconds (the flag ends the
// session); a second signal during the clean end exits at once.
func TestE2ETerminateIsBounded(t *testing.T) {
	e := newE2E(t, lab.Options{})
	ctx := ctxFor(t, 2*time.Minute)
	cmd, stdin, stdout, stderr := e.startConnect(t, ctx)
	go io.Copy(io.Discard, stdout)
	slow := e.l.Faults()
	slow.APILatency = time.Minute
	e.l.SetFaults(slow)
	start := time.Now()
	// As ssh ends its ProxyCommand: SIGHUP, then its end of the pipes closes
	// as it exits (OpenSSH sshconnect.c kill_proxy_command, then exit).
	cmd.Process.Signal(syscall.SIGHUP)
	stdin.Close()
	err := cmd.Wait()
	took := time.Since(start)
	if code := exitCode(err); code != 0 || took > 20*time.Second {
		t.Fatalf("exit %d after %v with a minute-long TerminateSession\n%s", code, took, stderr())
	}
	t.Logf("clean end took %v", took)
	if c := e.l.Mgs().Counts(); c.EndedByFlag != 1 || c.Open != 0 {
		t.Fatalf("lab counts %v: the flag did not end the session", c)
	}

	// A second signal while TerminateSession hangs: exit 128+SIGINT at once.
	fast := slow
	fast.APILatency = 0
	e.l.SetFaults(fast)
	cmd, _, stdout, stderr = e.startConnect(t, ctx)
	go io.Copy(io.Discard, stdout)
	e.l.SetFaults(slow)
	cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(100 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGINT)
	if code := exitCode(cmd.Wait()); code != 130 {
		t.Fatalf("exit %d after a second signal, want 130\n%s", code, stderr())
	}
}

// TestE2ESighupToCpEndsSessions: SIGHUP in the middle of a parallel
// download ends every session cp opened on the service.
func TestE2ESighupToCpEndsSessions(t *testing.T) {
	e := slowLab(t, 4<<20)
	ctx := ctxFor(t, 2*time.Minute)
	src, _ := randFile(t, 24<<20)
	dst := filepath.Join(t.TempDir(), "out.bin")
	cmd, stderr := e.startCp(t, ctx, "-j", "3", "--chunk-size", "1048576", "gpu1:"+src, dst)
	waitJournal(t, dst+".devgate-journal", 3)
	cmd.Process.Signal(syscall.SIGHUP)
	if code := exitCode(cmd.Wait()); code != 130 {
		t.Fatalf("exit %d after SIGHUP, want 130 (interrupted)\n%s", code, stderr)
	}
	c := e.l.Mgs().Counts()
	if c.Started < 2 || c.ClientTerminated != c.Started || c.Open != 0 {
		t.Fatalf("after cp exited: %v; want every session terminated by the client", c)
	}
	t.Logf("lab counts: %v", c)
}

// TestE2ESighupWhileSSHHoldsTheConnection: a SIGHUP while stdin stays open
// did not come from an exiting ssh (the terminal that started a
// ControlPersist master closed, and the master, in a session of its own,
// still uses the connection): connect carries on, the session still carries
// data, and the end of stdin later still ends the session on the service.
func TestE2ESighupWhileSSHHoldsTheConnection(t *testing.T) {
	e := newE2E(t, lab.Options{})
	ctx := ctxFor(t, time.Minute)
	cmd, stdin, stdout, stderr := e.startConnect(t, ctx)
	br := bufio.NewReader(stdout)
	if _, err := br.ReadString('\n'); err != nil { // the rest of sshd's banner line
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(2 * time.Second) // past the grace
	// Still a live session (had connect ended, stdout would be at EOF): our
	// identification line gets sshd's KEXINIT.
	io.WriteString(stdin, "SSH-2.0-OpenSSH_9.2\r\n")
	head := make([]byte, 6)
	if _, err := io.ReadFull(br, head); err != nil || head[5] != 20 { // packet length, padding length, SSH_MSG_KEXINIT
		t.Fatalf("no KEXINIT after the SIGHUP: %v %v\n%s", head, err, stderr())
	}
	if !strings.Contains(stderr(), "SIGHUP while ssh still holds the connection") {
		t.Errorf("the ignored SIGHUP was not said:\n%s", stderr())
	}
	stdin.Close()
	go io.Copy(io.Discard, br)
	if code := exitCode(cmd.Wait()); code != 0 {
		t.Fatalf("exit %d after stdin closed\n%s", code, stderr())
	}
	e.waitEnded(t, 1)
}

// TestE2EControlPersistOutlivesTheTerminal: through the config setup writes
// (ControlMaster auto, ControlPersist), three ssh each run in a terminal
// that closes when it ends (script -c, as tmux or an IDE task runs them):
// the master the first one left behind serves the next two, so one session
// serves all three. The terminal's hangup reaches devgate connect (it is in
// the first ssh's process group, the master is not): before the SIGHUP gate,
// each closing terminal ended the master's session and the next ssh paid a
// new one (3 sessions for 3 ssh). `ssh -O exit` then ends it on the service.
func TestE2EControlPersistOutlivesTheTerminal(t *testing.T) {
	e := newE2E(t, lab.Options{})
	shortHome(t, e)
	ctx := ctxFor(t, 2*time.Minute)
	if out, errs, code := e.devgate(ctx, nil, nil, "setup", "--yes", "--user", e.user(t)); code != 0 {
		t.Fatalf("setup: %d\n%s\n%s", code, out, errs)
	}
	defer e.exitMasters(t, "devbox-gpu1")
	for i := range 3 {
		term, err := e.sshInPty(t, ctx, nil, "devbox-gpu1", "echo", "shared-master")
		if err != nil || !strings.Contains(term, "shared-master") {
			t.Fatalf("ssh %d: %v\n%s", i, err, term)
		}
	}
	if c := e.l.Mgs().Counts(); c.Started != 1 || c.Open != 1 {
		t.Fatalf("lab counts %v after three ssh: want one session, still open", c)
	}
	e.exitMasters(t, "devbox-gpu1")
	e.waitEnded(t, 1)
}
