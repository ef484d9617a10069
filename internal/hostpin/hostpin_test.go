package hostpin

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnpinPlainAndHashed writes known_hosts lines the way ssh does (plain,
// and hashed by `ssh-keygen -H`) and removes only the alias's.
func TestUnpinPlainAndHashed(t *testing.T) {
	dir := t.TempDir()
	kh := filepath.Join(dir, "known_hosts")
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	other := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB7mJ3uZ0a5Q3L2o1vS0bJd1wSSE9M9yo7p0r2Yc5x0a"
	os.WriteFile(kh, []byte("devbox-gpu1 "+key+"\ndevbox-gpu10 "+other+"\n# comment devbox-gpu1\n"), 0o600)
	hashed := filepath.Join(dir, "hashed")
	os.WriteFile(hashed, []byte("devbox-gpu1 "+key+"\ni-0abc "+other+"\n"), 0o600)
	if out, err := exec.Command("ssh-keygen", "-H", "-f", hashed).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -H: %v %s", err, out)
	}
	b, _ := os.ReadFile(hashed)
	if strings.Contains(string(b), "devbox-gpu1") {
		t.Fatalf("not hashed: %s", b)
	}
	n, err := Unpin(hashed, "devbox-gpu1")
	if err != nil || n != 1 {
		t.Fatalf("hashed: removed %d, %v", n, err)
	}
	// ssh-keygen -F finds what is left: i-0abc yes, devbox-gpu1 no.
	if err := exec.Command("ssh-keygen", "-F", "i-0abc", "-f", hashed).Run(); err != nil {
		t.Fatalf("i-0abc's line was removed too: %v", err)
	}
	if err := exec.Command("ssh-keygen", "-F", "devbox-gpu1", "-f", hashed).Run(); err == nil {
		t.Fatal("devbox-gpu1's hashed line is still there")
	}
	n, err = Unpin(kh, "devbox-gpu1")
	if err != nil || n != 1 {
		t.Fatalf("plain: removed %d, %v", n, err)
	}
	b, _ = os.ReadFile(kh)
	if string(b) != "devbox-gpu10 "+other+"\n# comment devbox-gpu1\n" {
		t.Fatalf("left %q", b)
	}
	if n, err := Unpin(filepath.Join(dir, "missing"), "x"); n != 0 || err != nil {
		t.Fatal(n, err)
	}
}

func TestFollow(t *testing.T) {
	dir := t.TempDir()
	st, kh := filepath.Join(dir, "state", "aliases.json"), filepath.Join(dir, "known_hosts")
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	os.WriteFile(kh, []byte("devbox-gpu1 "+key+"\n"), 0o600)
	ctx := context.Background()
	if prev, err := Follow(ctx, st, kh, "devbox-gpu1", "i-01"); prev != "" || err != nil {
		t.Fatal(prev, err)
	}
	if b, _ := os.ReadFile(kh); len(b) == 0 {
		t.Fatal("first record must not unpin")
	}
	if prev, err := Follow(ctx, st, kh, "devbox-gpu1", "i-01"); prev != "" || err != nil {
		t.Fatal(prev, err)
	}
	prev, err := Follow(ctx, st, kh, "devbox-gpu1", "i-02")
	if prev != "i-01" || err != nil {
		t.Fatal(prev, err)
	}
	if b, _ := os.ReadFile(kh); len(b) != 0 {
		t.Fatalf("stale key kept: %s", b)
	}
}
