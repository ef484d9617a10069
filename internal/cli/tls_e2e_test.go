package cli_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/lab"
)

// TestE2ETLSLab: the lab serves HTTPS/WSS with its own CA (as a
// TLS-inspecting proxy would). With AWS_CA_BUNDLE naming that CA, connect
// (through real ssh), forward and cp work: the data-channel WebSocket trusts
// the same roots as the SDK's API calls (the system roots do not hold the
// lab's CA). Without it, the failure names the untrusted certificate and the
// hint names AWS_CA_BUNDLE; the same through a profile's ca_bundle.
func TestE2ETLSLab(t *testing.T) {
	e := newE2E(t, lab.Options{TLS: true})
	ctx := ctxFor(t, 2*time.Minute)
	if !strings.HasPrefix(e.l.Endpoint(), "https://") || e.l.CAFile() == "" {
		t.Fatalf("endpoint %s, CA %q", e.l.Endpoint(), e.l.CAFile())
	}
	e.environ = envWithout(e.environ, "SSL_CERT_FILE", "SSL_CERT_DIR")

	// connect, through real ssh and the ssh config.
	var out bytes.Buffer
	if stderr, err := e.ssh(ctx, nil, &out, "gpu1", "echo", "over wss"); err != nil || out.String() != "over wss\n" {
		t.Fatalf("ssh over the TLS lab: %v %q\n%s", err, out.String(), stderr)
	}

	// forward.
	port := httpOnInstance(t)
	cmd := exec.CommandContext(ctx, "devgate", "forward", "gpu1", fmt.Sprintf("0:%d", port))
	cmd.Env = e.environ
	stdout, _ := cmd.StdoutPipe()
	var ferr bytes.Buffer
	cmd.Stderr = &ferr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() {
		t.Fatalf("forward printed nothing\n%s", ferr.String())
	}
	resp, err := http.Get(strings.Fields(sc.Text())[0] + "/n/4321")
	if err != nil {
		t.Fatalf("GET through forward: %v\n%s", err, ferr.String())
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(b) != 4321 {
		t.Fatalf("forward: %d bytes\n%s", len(b), ferr.String())
	}
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()

	// cp, up and back.
	src := filepath.Join(t.TempDir(), "f")
	data := make([]byte, 300<<10)
	rand.Read(data)
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	remote := filepath.Join(t.TempDir(), "remote-f")
	e.cp(t, ctx, nil, src, "gpu1:"+remote)
	down := filepath.Join(t.TempDir(), "down")
	e.cp(t, ctx, nil, "gpu1:"+remote, down)
	sameFile(t, src, down)

	// Without the CA: a clear x509 failure and a hint naming AWS_CA_BUNDLE.
	noCA := envWithout(e.environ, "AWS_CA_BUNDLE")
	for _, args := range [][]string{{"connect", "gpu1", "22"}, {"ls"}} {
		stderr, code := runEnv(t, noCA, args...)
		if code == 0 || !strings.Contains(stderr, "not trusted") || !strings.Contains(stderr, "hint:") || !strings.Contains(stderr, "AWS_CA_BUNDLE") {
			t.Fatalf("%v without the CA: exit %d\n%s", args, code, stderr)
		}
	}

	// The profile's ca_bundle is the same trust.
	cfgFile := filepath.Join(t.TempDir(), "config")
	key, secret := e.l.Credentials()
	os.WriteFile(cfgFile, []byte("[profile lab]\nca_bundle = "+e.l.CAFile()+"\naws_access_key_id = "+key+"\naws_secret_access_key = "+secret+"\n"), 0o600)
	var ssh bytes.Buffer
	cmd = exec.CommandContext(ctx, "devgate", "connect", "--profile", "lab", "gpu1", "22")
	cmd.Env = append(append([]string(nil), noCA...), "AWS_CONFIG_FILE="+cfgFile)
	cmd.Stdout = &ssh
	var cerr bytes.Buffer
	cmd.Stderr = &cerr
	cmd.Stdin = strings.NewReader("")
	// stdin is empty: connect opens the data channel (WSS), then ends at stdin's EOF.
	if err := cmd.Run(); err != nil || !strings.Contains(cerr.String(), "Connected in") {
		t.Fatalf("connect --profile with ca_bundle: %v, stdout %q\n%s", err, ssh.String(), cerr.String())
	}
}
