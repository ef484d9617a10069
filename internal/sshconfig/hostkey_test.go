package sshconfig

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/sshkey"
)

// TestMain lets the test binary act as a plain TCP relay when ssh runs it as
// a ProxyCommand override (see TestHostKeyPinning).
func TestMain(m *testing.M) {
	if addr := os.Getenv("DEVGATE_TEST_RELAY"); addr != "" {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		go func() { io.Copy(c, os.Stdin); c.(*net.TCPConn).CloseWrite() }()
		io.Copy(os.Stdout, c)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type sshd struct {
	cmd  *exec.Cmd
	addr string
}

func startSSHD(t *testing.T, dir, hostKey, authorized string) *sshd {
	t.Helper()
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // privilege separation dir
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	cfg := filepath.Join(dir, "sshd_config")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`ListenAddress 127.0.0.1
Port %s
HostKey %s
AuthorizedKeysFile %s
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile none
`, port, hostKey, authorized)), 0o600)
	cmd := exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", cfg)
	var logs strings.Builder // written only by the exec copier; read after Wait
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &sshd{cmd: cmd, addr: addr}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("sshd log:\n%s", logs.String())
		}
	})
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return s
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("sshd did not start")
	return nil
}

func (s *sshd) stop() {
	if s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
}

// TestHostKeyPinning checks the host-key options of the generated config
// with the real ssh and sshd: the first connection pins the key in devgate's
// known_hosts under the instance id, and a changed key is refused.
//
// The generated ProxyCommand (`devgate connect`) is replaced on the command
// line by a plain TCP relay, so this tests the config's options, not the
// Session Manager path.
func TestHostKeyPinning(t *testing.T) {
	home, err := os.MkdirTemp("/tmp", "dgk") // short: the ControlPath must fit a socket path
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	srv := t.TempDir()
	for _, k := range []string{"hostA", "hostB"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(srv, k)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v %s", err, out)
		}
	}
	key, err := sshkey.Ensure(sshkey.DefaultPath(home))
	if err != nil {
		t.Fatal(err)
	}
	authorized := filepath.Join(srv, "authorized_keys")
	os.WriteFile(authorized, []byte(key.Public.AuthorizedKey+"\n"), 0o600)

	o := Options{GOOS: "linux", Home: home, Binary: "/nonexistent/devgate", User: "root"}
	cs, err := Plan(o, []Instance{{Name: "gpu1", ID: "i-0123456789abcdef0"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if _, err := c.Apply(time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(home, ".ssh/devgate/cm"), 0o700)
	self, _ := os.Executable()

	sshTo := func(s *sshd) (string, error) {
		cmd := exec.Command("ssh", "-F", UserConfigPath(home),
			"-o", "ProxyCommand="+self, "-o", "ControlMaster=no", "-o", "BatchMode=yes",
			"devbox-gpu1", "echo", "pinned-ok")
		cmd.Env = append(os.Environ(), "HOME="+home, "DEVGATE_TEST_RELAY="+s.addr)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	a := startSSHD(t, srv, filepath.Join(srv, "hostA"), authorized)
	out, err := sshTo(a)
	if err != nil || !strings.Contains(out, "pinned-ok") {
		t.Fatalf("first connection: %v\n%s", err, out)
	}
	kh, _ := os.ReadFile(KnownHostsPath(home))
	pubA, _ := os.ReadFile(filepath.Join(srv, "hostA.pub"))
	// Pinned under the alias ssh was given (devgate connect resolves it by Name; hostpin unpins it when the instance is replaced).
	if f := strings.Fields(string(pubA)); !strings.Contains(string(kh), "devbox-gpu1 "+f[0]+" "+f[1]) {
		t.Fatalf("host key not pinned under the alias:\n%s", kh)
	}
	if out, err := sshTo(a); err != nil || !strings.Contains(out, "pinned-ok") {
		t.Fatalf("second connection: %v\n%s", err, out)
	}
	a.stop()

	b := startSSHD(t, srv, filepath.Join(srv, "hostB"), authorized)
	out, err = sshTo(b)
	if err == nil || strings.Contains(out, "pinned-ok") {
		t.Fatalf("changed host key accepted:\n%s", out)
	}
	if !strings.Contains(out, "REMOTE HOST IDENTIFICATION HAS CHANGED") {
		t.Fatalf("refused for another reason:\n%s", out)
	}
	if kh2, _ := os.ReadFile(KnownHostsPath(home)); string(kh2) != string(kh) {
		t.Fatal("known_hosts changed after a refused key")
	}
}
