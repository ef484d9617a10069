package cli_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/lab"
)

// httpOnInstance serves GET /n/<bytes> on 127.0.0.1 (the lab maps the
// instance's localhost ports to this machine's) and returns its port.
func httpOnInstance(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/n/"))
		w.Write(bytes.Repeat([]byte("x"), n))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// TestE2EForward: devgate forward prints one URL line per spec on stdout,
// serves requests on both, and Ctrl-C (SIGINT) ends it with exit 0 and no
// session left in the lab.
func TestE2EForward(t *testing.T) {
	e := newE2E(t, lab.Options{})
	ctx := ctxFor(t, time.Minute)
	p1, p2 := httpOnInstance(t), httpOnInstance(t)
	free, _ := net.Listen("tcp", "127.0.0.1:0")
	local := free.Addr().(*net.TCPAddr).Port
	free.Close()
	cmd := exec.CommandContext(ctx, "devgate", "forward", "gpu1", fmt.Sprintf("%d:%d", local, p1), fmt.Sprintf("0:localhost:%d", p2))
	cmd.Env = e.environ
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stdout)
	var lines []string
	for len(lines) < 2 && sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) != 2 {
		t.Fatalf("stdout lines %q; stderr:\n%s", lines, stderr.String())
	}
	want0 := fmt.Sprintf("http://127.0.0.1:%d -> gpu1:%d", local, p1)
	if lines[0] != want0 {
		t.Errorf("line 1 %q, want %q", lines[0], want0)
	}
	if !strings.HasSuffix(lines[1], fmt.Sprintf(" -> gpu1 -> localhost:%d", p2)) {
		t.Errorf("line 2 %q", lines[1])
	}
	for _, line := range lines {
		url := strings.Fields(line)[0]
		resp, err := http.Get(url + "/n/12345")
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if len(b) != 12345 {
			t.Fatalf("GET %s: %d bytes", url, len(b))
		}
	}
	http.DefaultClient.CloseIdleConnections()
	if n := len(e.l.Mgs().Active()); n != 2 {
		t.Errorf("%d active sessions, want 2 (one per spec)", n)
	}
	cmd.Process.Signal(syscall.SIGINT)
	rest, _ := io.ReadAll(stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after Ctrl-C: %v\n%s", err, stderr.String())
	}
	if len(rest) != 0 {
		t.Errorf("more on stdout: %q", rest)
	}
	if len(e.l.Mgs().Active()) != 0 {
		t.Errorf("sessions still active after Ctrl-C: %v", e.l.Mgs().Active())
	}
	if !strings.Contains(stderr.String(), "sessions terminated") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
}

func TestE2EForwardPortInUse(t *testing.T) {
	e := newE2E(t, lab.Options{})
	ctx := ctxFor(t, time.Minute)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := busy.Addr().(*net.TCPAddr).Port
	out, errOut, code := e.devgate(ctx, nil, nil, "forward", "gpu1", strconv.Itoa(port))
	if code != 2 || out != "" || !strings.Contains(errOut, "already in use") || !strings.Contains(errOut, "hint:") {
		t.Fatalf("busy port: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if c := e.l.Calls("StartSession"); c != 0 {
		t.Errorf("StartSession called %d times before the port was checked", c)
	}
	// --auto takes a free port and says so.
	p := httpOnInstance(t)
	cmd := exec.CommandContext(ctx, "devgate", "forward", "--auto", "gpu1", fmt.Sprintf("%d:%d", port, p))
	cmd.Env = e.environ
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.HasPrefix(line, fmt.Sprintf("http://127.0.0.1:%d ", port)) || !strings.Contains(line, "was in use") {
		t.Fatalf("--auto line %q %v\n%s", line, err, stderr.String())
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after Ctrl-C: %v\n%s", err, stderr.String())
	}
}

// TestE2EForwardStoppedInstance: --no-start refuses a stopped instance with
// its exit code; without it forward starts the instance like connect.
func TestE2EForwardStoppedInstance(t *testing.T) {
	e := newE2E(t, lab.Options{})
	ctx := ctxFor(t, time.Minute)
	p := httpOnInstance(t)
	spec := "0:" + strconv.Itoa(p)
	out, errOut, code := e.devgate(ctx, nil, nil, "forward", "--no-start", "gpu2", spec)
	if code != 14 || out != "" || !strings.Contains(errOut, "--no-start") {
		t.Fatalf("--no-start on a stopped instance: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	cmd := exec.CommandContext(ctx, "devgate", "forward", "gpu2", spec)
	cmd.Env = e.environ
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("no URL line: %v\n%s", err, stderr.String())
	}
	resp, err := http.Get(strings.Fields(line)[0] + "/n/777")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	if len(b) != 777 {
		t.Fatalf("%d bytes", len(b))
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after Ctrl-C: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "Starting instance") {
		t.Errorf("stderr lacks the start:\n%s", stderr.String())
	}
}
