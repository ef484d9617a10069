//go:build linux

package cli_test

// devgate shell and devgate exec end to end: the devgate binary (this test
// binary as "devgate") in a real pseudo-terminal (creack/pty) → devgate-lab
// in-process → the emulated agent's real sh in its own real pty.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labkms"
	"github.com/devgate/devgate/internal/lab/labtest"
	"github.com/devgate/devgate/internal/lab/labvpn"
	"github.com/devgate/devgate/internal/lab/mgs"
)

// ptyRun is devgate running on a pseudo-terminal: the test types into the
// master and reads the screen from it.
type ptyRun struct {
	t      *testing.T
	cmd    *exec.Cmd
	master *os.File
	slave  *os.File
	mu     sync.Mutex
	screen bytes.Buffer
	stderr syncBuffer
	done   chan struct{}
	code   int
}

// startPTY runs devgate with a terminal of rows×cols as stdin and stdout
// (stderr apart, for progress lines).
func (e *e2e) startPTY(t *testing.T, rows, cols int, args ...string) *ptyRun {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	if err := pty.Setsize(master, &pty.Winsize{Rows: uint16(rows), Cols: uint16(cols)}); err != nil {
		t.Fatal(err)
	}
	r := &ptyRun{t: t, master: master, slave: slave, done: make(chan struct{})}
	r.cmd = exec.Command("devgate", args...)
	r.cmd.Env = e.environ
	r.cmd.Stdin, r.cmd.Stdout, r.cmd.Stderr = slave, slave, &r.stderr
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := master.Read(b)
			r.mu.Lock()
			r.screen.Write(b[:n])
			r.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() {
		err := r.cmd.Wait()
		r.code = 0
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		}
		close(r.done)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			r.cmd.Process.Kill()
			<-r.done
		}
		slave.Close()
		master.Close()
	})
	return r
}

func (r *ptyRun) text() string { r.mu.Lock(); defer r.mu.Unlock(); return r.screen.String() }

// waitFor waits until the screen matches re (after from bytes) and returns the match.
func (r *ptyRun) waitFor(re string, from int) []string {
	r.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := r.text()
		if from > len(s) {
			from = len(s)
		}
		if m := rx.FindStringSubmatch(s[from:]); m != nil {
			return m
		}
		select {
		case <-r.done:
			r.t.Fatalf("devgate exited (%d) before %q appeared; screen:\n%s\nstderr:\n%s", r.code, re, s, r.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%q did not appear; screen:\n%s\nstderr:\n%s", re, s, r.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// run types a command line and waits for a marker printed after it, so that
// each step's output is known to be complete.
func (r *ptyRun) run(line string) string {
	r.t.Helper()
	mark := fmt.Sprintf("M%dK", time.Now().UnixNano()%1e9)
	from := len(r.text())
	r.type_(line + "; echo " + mark[:2] + "''" + mark[2:] + "\r")
	m := r.waitFor(`(?s)^(.*?)`+mark+`\r?\n`, from)
	return m[1]
}

func (r *ptyRun) type_(s string) {
	if _, err := r.master.Write([]byte(s)); err != nil {
		r.t.Fatal(err)
	}
}

func (r *ptyRun) wait() int {
	r.t.Helper()
	select {
	case <-r.done:
		return r.code
	case <-time.After(30 * time.Second):
		r.t.Fatalf("devgate did not exit; screen:\n%s\nstderr:\n%s", r.text(), r.stderr.String())
	}
	return -1
}

func newShellE2E(t *testing.T, opts lab.Options) *e2e {
	opts.Services = append(opts.Services, labvpn.New())
	if opts.SessionMinute == 0 {
		opts.SessionMinute = time.Minute
	}
	return newE2E(t, opts)
}

// shellSession checks one interactive session: size at start and after a
// resize, $0, Ctrl-C interrupting sleep without ending the session, and the
// end when the shell exits.
func shellSession(t *testing.T, e *e2e, wantBanner string) {
	r := e.startPTY(t, 33, 101, "shell", "gpu1")
	r.waitFor(`[$#] $`, 0) // sh's prompt
	if wantBanner != "" && !strings.Contains(r.stderr.String(), wantBanner) {
		t.Fatalf("stderr %q lacks %q", r.stderr.String(), wantBanner)
	}
	if out := r.run("stty size"); !strings.Contains(out, "33 101") {
		t.Fatalf("stty size = %q, want 33 101 (the local terminal)", out)
	}
	if err := pty.Setsize(r.master, &pty.Winsize{Rows: 47, Cols: 132}); err != nil {
		t.Fatal(err)
	}
	r.cmd.Process.Signal(syscall.SIGWINCH) // the kernel sends it to the foreground group; be sure
	deadline := time.Now().Add(20 * time.Second)
	for out := r.run("stty size"); !strings.Contains(out, "47 132"); out = r.run("stty size") {
		if time.Now().After(deadline) {
			t.Fatalf("after a resize stty size = %q, want 47 132", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out := r.run("echo $0"); !regexp.MustCompile(`(?m)^([$#] )?sh\r?$`).MatchString(out) {
		t.Fatalf("echo $0 = %q, want sh (the agent runs sh)", out)
	}
	from := len(r.text())
	r.type_("sleep 100; echo slept\r")
	time.Sleep(300 * time.Millisecond)
	r.type_("\x03") // Ctrl-C: a key for the remote shell, not a signal for devgate
	r.waitFor(`[$#] $`, from)
	if out := r.run("echo alive"); !strings.Contains(out, "alive") || regexp.MustCompile(`(?m)^([$#] )?slept\r?$`).MatchString(r.text()[from:]) {
		t.Fatalf("after Ctrl-C: %q (screen %q)", out, r.text()[from:])
	}
	r.type_("exit 3\r")
	// The real agent reports no exit status for pty sessions (shell.go
	// executeCommandsWithPty): the session ends and devgate exits 0.
	if code := r.wait(); code != 0 {
		t.Fatalf("devgate exited %d after the remote shell's exit; stderr:\n%s", code, r.stderr.String())
	}
}

func TestE2EShell(t *testing.T) {
	e := newShellE2E(t, lab.Options{})
	t.Run("plain", func(t *testing.T) { shellSession(t, e, "") })
	t.Run("terminal restored after kill -9 of the remote shell", func(t *testing.T) {
		r := e.startPTY(t, 24, 80, "shell", "gpu1")
		r.waitFor(`[$#] $`, 0)
		before, err := unix.IoctlGetTermios(int(r.slave.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		if before.Lflag&unix.ECHO != 0 {
			t.Fatal("the terminal is not in raw mode during the session")
		}
		m := regexp.MustCompile(`(?m)^(?:[$#] )?(\d+)\r?$`).FindStringSubmatch(r.run("echo $$"))
		if m == nil {
			t.Fatal("no pid from echo $$")
		}
		pid, _ := strconv.Atoi(m[1])
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill -9 %d: %v", pid, err)
		}
		if code := r.wait(); code != 0 {
			t.Fatalf("exit %d; stderr:\n%s", code, r.stderr.String())
		}
		after, err := unix.IoctlGetTermios(int(r.slave.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		if after.Lflag&(unix.ECHO|unix.ICANON) != unix.ECHO|unix.ICANON || after.Oflag&unix.OPOST == 0 {
			t.Fatalf("terminal not restored: lflag %#x oflag %#x", after.Lflag, after.Oflag)
		}
	})
	t.Run("InteractiveCommands document with parameters", func(t *testing.T) {
		r := e.startPTY(t, 29, 77, "shell", "gpu1", "--document", "AWS-StartInteractiveCommand",
			// Without KMS the agent skips the handshake, and a client learns that the
			// session started from its first output (§4.1; the official plugin too), so
			// the command says something first. It may start before the size message
			// lands (the agent starts it at 24×80): wait for the change, then print it.
			"--parameters", `command=echo started; while [ "$(stty size)" = "24 80" ]; do sleep 0.1; done; stty size; tty >/dev/null && echo on-a-tty`)
		r.waitFor(`29 77\r?\n`, 0)
		r.waitFor(`on-a-tty`, 0)
		if code := r.wait(); code != 0 {
			t.Fatalf("exit %d; stderr:\n%s", code, r.stderr.String())
		}
	})
	t.Run("SIGHUP terminates the session", func(t *testing.T) {
		r := e.startPTY(t, 24, 80, "shell", "gpu1")
		r.waitFor(`[$#] $`, 0)
		before := e.l.Calls("TerminateSession")
		active := len(e.l.Mgs().Active()) // this session among them
		r.cmd.Process.Signal(syscall.SIGHUP)
		r.wait()
		if e.l.Calls("TerminateSession") <= before {
			t.Fatal("no TerminateSession after SIGHUP")
		}
		if n := len(e.l.Mgs().Active()); n != active-1 {
			t.Fatalf("%d sessions active after SIGHUP, want %d", n, active-1)
		}
	})
}

// TestE2EShellKMS: with kmsKeyId in the preferences the session is encrypted
// (the agent's KMS handshake, GenerateDataKey against the lab's KMS) and
// behaves the same; a key the user may not use gives exit 17 naming
// kms:GenerateDataKey and the key.
func TestE2EShellKMS(t *testing.T) {
	e := newShellE2E(t, lab.Options{})
	ctx := ctxFor(t, 2*time.Minute)
	if _, stderr, code := e.devgate(ctx, nil, nil, "prefs", "set", "--yes", "kmsKeyId="+labkms.UsableAlias); code != 0 {
		t.Fatalf("prefs set: %d %s", code, stderr)
	}
	shellSession(t, e, "encrypted using AWS KMS")
	if _, stderr, code := e.devgate(ctx, nil, nil, "prefs", "set", "--yes", "kmsKeyId="+labkms.ForbiddenAlias); code != 0 {
		t.Fatalf("prefs set: %d %s", code, stderr)
	}
	r := e.startPTY(t, 24, 80, "shell", "gpu1")
	if code := r.wait(); code != int(exitcode.SessionRefused) || !strings.Contains(r.stderr.String(), "kms:GenerateDataKey") ||
		!strings.Contains(r.stderr.String(), labkms.ForbiddenAlias) {
		t.Fatalf("forbidden key: exit %d, stderr:\n%s", code, r.stderr.String())
	}
	// exec runs through the same KMS handshake (the key named by its ARN this time).
	out, stderr, code := e.devgate(ctx, strings.NewReader(""), nil, "prefs", "set", "--yes",
		"kmsKeyId=arn:aws:kms:"+e.l.Region()+":"+lab.DefaultAccount+":key/"+labkms.UsableKeyID)
	if code != 0 {
		t.Fatalf("prefs set: %d %s %s", code, out, stderr)
	}
	out, stderr, code = e.devgate(ctx, nil, nil, "exec", "-q", "gpu1", "--", "sh", "-c", "printf out; printf err >&2; exit 7")
	if out != "out" || stderr != "err" || code != 7 {
		t.Fatalf("exec with KMS: stdout %q stderr %q exit %d", out, stderr, code)
	}
}

// TestE2EShellIdleTimeout: idleSessionTimeout from the preferences (1 minute,
// a lab minute being 2 s here) ends an idle session with the agent's message.
func TestE2EShellIdleTimeout(t *testing.T) {
	e := newShellE2E(t, lab.Options{SessionMinute: 2 * time.Second})
	ctx := ctxFor(t, time.Minute)
	if _, stderr, code := e.devgate(ctx, nil, nil, "prefs", "set", "--yes", "idleSessionTimeout=1", "shellProfile.linux=PS1='prof> '"); code != 0 {
		t.Fatalf("prefs set: %d %s", code, stderr)
	}
	r := e.startPTY(t, 24, 80, "shell", "gpu1")
	r.waitFor(`prof> $`, 0) // shellProfile ran before the user's input
	code := r.wait()
	if code != 0 || !strings.Contains(r.stderr.String(), mgs.IdleTimeoutMessage) {
		t.Fatalf("exit %d, stderr:\n%s", code, r.stderr.String())
	}
}

// TestE2EShellResume: WebSocket drops during a shell session are resumed
// with nothing lost or repeated on the screen.
func TestE2EShellResume(t *testing.T) {
	f := labtest.Fast()
	f.DropEvery = 300 * time.Millisecond
	e := newShellE2E(t, lab.Options{Faults: f})
	r := e.startPTY(t, 24, 80, "shell", "gpu1")
	r.waitFor(`[$#] $`, 0)
	// About 2 s of output in bursts, so that several drops fall inside it.
	out := r.run("i=0; while [ $i -lt 3000 ]; do i=$((i+1)); echo line$i; [ $((i%300)) = 0 ] && sleep 0.2; done")
	got := regexp.MustCompile(`(?m)^(?:[$#] )?line(\d+)\r?$`).FindAllStringSubmatch(out, -1)
	if len(got) != 3000 {
		t.Fatalf("%d lines on the screen, want 3000", len(got))
	}
	for i, m := range got {
		if m[1] != strconv.Itoa(i+1) {
			t.Fatalf("line %d reads %s: lost or repeated output", i+1, m[1])
		}
	}
	if e.l.Mgs().Drops() == 0 {
		t.Fatal("no WebSocket was dropped")
	}
	if !strings.Contains(r.stderr.String(), "resumed") {
		t.Fatalf("no resume reported; stderr:\n%s", r.stderr.String())
	}
	r.type_("exit\r")
	r.wait()
}

func TestE2EExec(t *testing.T) {
	e := newShellE2E(t, lab.Options{})
	ctx := ctxFor(t, 3*time.Minute)
	t.Run("streams apart, exit status", func(t *testing.T) {
		out, stderr, code := e.devgate(ctx, nil, nil, "exec", "-q", "gpu1", "--", "sh", "-c", "printf out; printf err >&2; exit 7")
		if out != "out" || stderr != "err" || code != 7 {
			t.Fatalf("stdout %q stderr %q exit %d", out, stderr, code)
		}
	})
	t.Run("10 MB whole", func(t *testing.T) {
		out, stderr, code := e.devgate(ctx, nil, nil, "exec", "-q", "gpu1", "--", "seq", "1", "1500000") // 10 888 896 bytes
		var want bytes.Buffer
		for i := 1; i <= 1500000; i++ {
			want.WriteString(strconv.Itoa(i))
			want.WriteByte('\n')
		}
		if code != 0 || out != want.String() {
			t.Fatalf("exit %d, %d bytes (want %d), stderr %q", code, len(out), want.Len(), stderr)
		}
	})
	t.Run("stdin passed and ended", func(t *testing.T) {
		in := strings.Repeat("hello devgate\n", 5000)
		out, stderr, code := e.devgate(ctx, strings.NewReader(in), nil, "exec", "-q", "gpu1", "--", "tr", "a-z", "A-Z")
		if code != 0 || out != strings.ToUpper(in) {
			t.Fatalf("exit %d, %d bytes (want %d), stderr %q", code, len(out), len(in), stderr)
		}
	})
	t.Run("arguments kept as words", func(t *testing.T) {
		out, _, code := e.devgate(ctx, nil, nil, "exec", "-q", "gpu1", "--", "printf", "%s|", "a b", "it's", "$HOME")
		if code != 0 || out != "a b|it's|$HOME|" {
			t.Fatalf("exit %d, %q", code, out)
		}
	})
}

// TestE2EManagedNode: a hybrid managed node (mi-…) has an agent but is not an
// EC2 instance: exec and shell reach it; connect says at once that EC2
// Instance Connect cannot, with exit 16 and a hint to use shell or --key.
func TestE2EManagedNode(t *testing.T) {
	const node = "mi-0123456789abcdef0"
	// The user installed this key on the node (ssh-copy-id): EC2 Instance
	// Connect cannot push one to a managed node.
	keyDir := t.TempDir()
	key := filepath.Join(keyDir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, _ := os.ReadFile(key + ".pub")
	e := newShellE2E(t, lab.Options{Instances: []lab.InstanceSpec{{Name: "gpu1"}, {ID: node, Name: "hybrid1", AuthorizedKeys: []string{string(pub)}}}})
	ctx := ctxFor(t, 2*time.Minute)
	out, stderr, code := e.devgate(ctx, nil, nil, "exec", "-q", node, "--", "sh", "-c", "echo on the node; exit 4")
	if out != "on the node\n" || code != 4 {
		t.Fatalf("exec on %s: %q exit %d, stderr %q", node, out, code, stderr)
	}
	r := e.startPTY(t, 24, 80, "shell", node)
	r.waitFor(`[$#] $`, 0)
	if out := r.run("echo hybrid"); !strings.Contains(out, "hybrid") {
		t.Fatalf("shell on %s: %q", node, out)
	}
	r.type_("exit\r")
	r.wait()
	// "At once": no key push and no session are even tried.
	_, stderr, code = e.devgate(ctx, nil, nil, "connect", node, "22")
	if code != int(exitcode.KeyPushRefused) || !strings.Contains(stderr, "devgate shell") || !strings.Contains(stderr, "--key") {
		t.Fatalf("connect to %s: exit %d, stderr:\n%s", node, code, stderr)
	}
	if e.l.Calls("SendSSHPublicKey") != 0 || e.l.Calls("StartSession") != 2 {
		t.Fatalf("connect to a managed node called SendSSHPublicKey %d times, StartSession %d (want 0, and only exec's and shell's)",
			e.l.Calls("SendSSHPublicKey"), e.l.Calls("StartSession"))
	}
	// With --key (the key installed on the node), connect skips the push and
	// real ssh logs in through Session Manager; the host key is pinned.
	info, _ := e.l.Instance("hybrid1")
	kh := filepath.Join(keyDir, "known_hosts")
	ssh := exec.CommandContext(ctx, "ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", key,
		"-o", "UserKnownHostsFile="+kh, "-o", "StrictHostKeyChecking=accept-new",
		"-o", "ProxyCommand=devgate connect %h %p --user %r --key "+key, info.User+"@"+node, "echo", "node-via-key")
	ssh.Env = e.environ
	out2, err := ssh.CombinedOutput()
	if err != nil || !strings.Contains(string(out2), "node-via-key") {
		t.Fatalf("ssh to %s with --key: %v\n%s", node, err, out2)
	}
	if b, _ := os.ReadFile(kh); !strings.Contains(string(b), strings.TrimSpace(info.HostKey)) {
		t.Fatalf("the node's host key was not pinned: %q", b)
	}
	if e.l.Calls("SendSSHPublicKey") != 0 || e.l.Calls("StartSession") != 3 {
		t.Fatalf("ssh with --key: SendSSHPublicKey %d, StartSession %d (want 0 and 3)", e.l.Calls("SendSSHPublicKey"), e.l.Calls("StartSession"))
	}
}
