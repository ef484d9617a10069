package cli_test

// Liveness (issue 11): the lab freezes a session's data channel (nothing
// read or written, no socket closed); devgate notices the silence, resumes
// when the lab thaws, and the stream is intact; frozen past the resume
// deadline, devgate exits 18. The tests shorten --liveness (default
// datachannel.DefaultLiveness, 20 s) so that a freeze of a few seconds is
// several liveness periods.

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
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
	"github.com/devgate/devgate/internal/lab/labtest"
)

// freezeWhenActive freezes the one active session for d.
func (e *e2e) freezeWhenActive(t *testing.T, d time.Duration) {
	t.Helper()
	ids := e.l.Mgs().Active()
	if len(ids) != 1 {
		t.Fatalf("active sessions %v, want 1", ids)
	}
	if err := e.l.Mgs().Freeze(ids[0], d); err != nil {
		t.Fatal(err)
	}
}

// TestE2EFreezeResumes: 64 MiB up through ssh while the data channel is
// frozen for 8 s (8 liveness periods) in the middle: byte-exact.
func TestE2EFreezeResumes(t *testing.T) {
	f := labtest.Fast()
	f.BandwidthCap = 8 << 20 // about 8 s for 64 MiB: the freeze lands mid-transfer
	e := newE2E(t, lab.Options{Faults: f})
	ctx := ctxFor(t, 3*time.Minute)
	const size = 64 << 20
	src, sum := randFile(t, size)
	up := filepath.Join(t.TempDir(), "up.bin")
	in, _ := os.Open(src)
	defer in.Close()
	cmd, stderr := e.sshCmd(t, ctx, "-o", "ProxyCommand=devgate connect %h %p --user %r --liveness 1s", "gpu1", "cat > "+up)
	cmd.Stdin = in
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if st, err := os.Stat(up); err == nil && st.Size() > 8<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the upload did not start\n%s", stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.freezeWhenActive(t, 8*time.Second)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ssh across the freeze: %v\n%s", err, stderr())
	}
	if got := fileSum(t, up); got != sum {
		t.Fatalf("sha256 %s after the freeze, want %s", got, sum)
	}
	for _, want := range []string{"stopped answering", "resumed"} {
		if !strings.Contains(stderr(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr())
		}
	}
	if e.l.Mgs().Freezes() != 1 {
		t.Fatalf("%d freezes", e.l.Mgs().Freezes())
	}
}

// TestE2EFrozenPastResumeDeadline: exit 18 with its message.
func TestE2EFrozenPastResumeDeadline(t *testing.T) {
	e := newE2E(t, lab.Options{})
	ctx := ctxFor(t, 2*time.Minute)
	cmd, _, stdout, stderr := e.startConnect(t, ctx, "--liveness", "1s", "--resume-timeout", "4s")
	go io.Copy(io.Discard, stdout)
	e.freezeWhenActive(t, time.Minute)
	start := time.Now()
	code := exitCode(cmd.Wait())
	if code != 18 || !strings.Contains(stderr(), "not resumed within 4s") || !strings.Contains(stderr(), "hint:") {
		t.Fatalf("exit %d after %v, want 18 and its message\n%s", code, time.Since(start), stderr())
	}
	if took := time.Since(start); took > 45*time.Second {
		t.Fatalf("exit 18 came %v after the freeze; want about liveness + resume timeout", took)
	}
}

// TestE2EForwardFreezeResumes: a forwarded connection in flight survives a
// freeze of its session.
func TestE2EForwardFreezeResumes(t *testing.T) {
	e := newE2E(t, lab.Options{})
	ctx := ctxFor(t, 2*time.Minute)
	port := echoOnInstance(t)
	cmd := exec.CommandContext(ctx, "devgate", "forward", "--liveness", "1s", "gpu1", fmt.Sprintf("0:%d", port))
	cmd.Env = e.environ
	stdout, _ := cmd.StdoutPipe()
	errf, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = errf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("no URL line: %v", err)
	}
	c, err := net.Dial("tcp", strings.TrimPrefix(strings.Fields(line)[0], "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	echo := func(msg string) {
		t.Helper()
		fmt.Fprintln(c, msg)
		c.SetReadDeadline(time.Now().Add(45 * time.Second))
		if got, err := r.ReadString('\n'); err != nil || got != msg+"\n" {
			b, _ := os.ReadFile(errf.Name())
			t.Fatalf("echo %q: %q %v\n%s", msg, got, err, b)
		}
	}
	echo("before")
	e.freezeWhenActive(t, 5*time.Second)
	// 1 MiB sent into the frozen channel, then a line: all of it comes back.
	h := sha256.New()
	big := strings.Repeat("x", 1<<20)
	go fmt.Fprintln(c, big)
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	got, err := r.ReadString('\n')
	io.WriteString(h, got)
	want := sha256.Sum256([]byte(big + "\n"))
	if err != nil || hex.EncodeToString(h.Sum(nil)) != hex.EncodeToString(want[:]) {
		t.Fatalf("1 MiB across the freeze: %d bytes, %v", len(got), err)
	}
	echo("after")
	cmd.Process.Signal(syscall.SIGINT)
	cmd.Wait()
	b, _ := os.ReadFile(errf.Name())
	for _, want := range []string{"stopped answering", "resumed"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("stderr lacks %q:\n%s", want, b)
		}
	}
}
