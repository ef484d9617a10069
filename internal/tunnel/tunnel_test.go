package tunnel_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/crypto/ssh"

	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labtest"
	"github.com/devgate/devgate/internal/tunnel"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func pubKey(t *testing.T) string {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ssh.NewPublicKey(pub)
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

func banner(t *testing.T, c *tunnel.Conn) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read banner: %v", err)
	}
	return string(b)
}

// TestParallelDialsPushOnce: 20 dials at once, sharing a state dir, push the key once.
func TestParallelDialsPushOnce(t *testing.T) {
	l := labtest.Start(t, lab.Options{})
	gpu1, _ := l.Instance("gpu1")
	state := t.TempDir()
	key := pubKey(t)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := tunnel.Dial(context.Background(), l.AWSConfig(), tunnel.Options{Target: "gpu1", Port: 22,
				User: gpu1.User, PublicKey: key, StateDir: state, Timeout: 30 * time.Second})
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if b := banner(t, c); b != "SSH-2.0-" {
				t.Errorf("banner %q", b)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := l.Calls("SendSSHPublicKey"); n != 1 {
		t.Fatalf("%d pushes, want 1", n)
	}
}

func TestColdPathAndFailures(t *testing.T) {
	l := labtest.Start(t, lab.Options{Instances: append(lab.DefaultInstances(), lab.InstanceSpec{Name: "old", State: "terminated"})})
	ctx := context.Background()
	var lines []string
	var mu sync.Mutex
	progress := func(f string, a ...any) { mu.Lock(); lines = append(lines, f); mu.Unlock() }

	_, err := tunnel.Dial(ctx, l.AWSConfig(), tunnel.Options{Target: "gpu2", Port: 22, NoStart: true, Timeout: 5 * time.Second})
	if exitcode.Code(err) != int(exitcode.StartTimeout) || !strings.Contains(err.Error(), "--no-start") {
		t.Fatalf("--no-start on a stopped instance: %v", err)
	}
	if _, err := tunnel.Dial(ctx, l.AWSConfig(), tunnel.Options{Target: "old", Port: 22}); exitcode.Code(err) != int(exitcode.Terminated) {
		t.Fatalf("terminated: %v", err)
	}
	if _, err := tunnel.Dial(ctx, l.AWSConfig(), tunnel.Options{Target: "gpu1", Port: 22, Document: "AWS-StartInteractiveCommand"}); exitcode.Code(err) != int(exitcode.Usage) {
		t.Fatalf("unsupported document: %v", err)
	}
	c, err := tunnel.Dial(ctx, l.AWSConfig(), tunnel.Options{Target: "gpu2", Port: 22, Timeout: 30 * time.Second, Progress: progress})
	if err != nil {
		t.Fatalf("cold path: %v", err)
	}
	defer c.Close()
	if b := banner(t, c); b != "SSH-2.0-" {
		t.Fatalf("banner %q", b)
	}
	mu.Lock()
	defer mu.Unlock()
	all := strings.Join(lines, "\n")
	for _, want := range []string{"Starting instance", "Connected in"} {
		if !strings.Contains(all, want) {
			t.Errorf("progress lacks %q:\n%s", want, all)
		}
	}
}
