package cli_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/lab"
)

// TestE2ENoSetupOneLiner: without `devgate setup` (no devgate key, no ssh
// config of ours), the one line from `devgate connect --help` logs in with
// the user's own key held by a real ssh-agent, as the user ssh was told.
func TestE2ENoSetupOneLiner(t *testing.T) {
	e := newE2E(t, lab.Options{Instances: []lab.InstanceSpec{{Name: "box", User: "ubuntu"}}})
	ctx := ctxFor(t, 2*time.Minute)
	agentDir, err := os.MkdirTemp("/tmp", "dga")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(agentDir) })
	sock := filepath.Join(agentDir, "agent.sock")
	agentCmd := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agentCmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agentCmd.Process.Signal(syscall.SIGTERM); agentCmd.Wait() })
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The user's key lives outside ~/.ssh (only the agent has it): ssh can only offer it through the agent.
	key := filepath.Join(agentDir, "mykey")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	add := exec.Command("ssh-add", key)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v %s", err, out)
	}
	env := append(append([]string(nil), e.environ...), "SSH_AUTH_SOCK="+sock)
	id := e.inst(t, "box")
	kh := filepath.Join(t.TempDir(), "known_hosts")
	cmd := exec.CommandContext(ctx, "ssh", "-F", "/dev/null", "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=accept-new", "-o", "UserKnownHostsFile="+kh,
		"-o", "ProxyCommand=devgate connect %h %p --user %r", "ubuntu@"+id, "id", "-un")
	cmd.Env = env
	var out, errs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errs
	if err := cmd.Run(); err != nil || out.String() != "ubuntu\n" {
		t.Fatalf("one-liner: %q %v\n%s", out.String(), err, errs.String())
	}
	if !strings.Contains(errs.String(), "pushing the key ssh offers first, from ssh-agent") {
		t.Errorf("stderr does not say which key was pushed:\n%s", errs.String())
	}
	if _, err := os.Stat(filepath.Join(e.home, ".ssh", "devgate", "id_ed25519")); err == nil {
		t.Error("the one-liner created devgate's own key")
	}
}
