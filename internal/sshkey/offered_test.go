package sshkey

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestOfferedFiles: without an agent, the first of ssh's default key files
// whose .pub exists, in ssh's order, skipping keys EC2 Instance Connect refuses.
func TestOfferedFiles(t *testing.T) {
	home := t.TempDir()
	if _, _, ok := Offered(home, ""); ok {
		t.Fatal("a key offered from an empty home")
	}
	dir := filepath.Join(home, ".ssh")
	os.MkdirAll(dir, 0o700)
	gen := func(name string, args ...string) {
		a := append([]string{"-q", "-N", "", "-f", filepath.Join(dir, name)}, args...)
		if out, err := exec.Command("ssh-keygen", a...).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen %s: %v %s", name, err, out)
		}
	}
	gen("id_ed25519", "-t", "ed25519")
	pub, src, ok := Offered(home, filepath.Join(home, "no-agent.sock"))
	if !ok || src != filepath.Join(dir, "id_ed25519") || pub.Key.Type() != "ssh-ed25519" {
		t.Fatalf("ed25519: %v %s", ok, src)
	}
	gen("id_rsa", "-t", "rsa", "-b", "1024") // ssh tries id_rsa first, but EC2 Instance Connect refuses < 2048 bits
	if _, src, _ := Offered(home, ""); src != filepath.Join(dir, "id_ed25519") {
		t.Fatalf("a 1024-bit RSA key was chosen: %s", src)
	}
	os.Remove(filepath.Join(dir, "id_rsa"))
	os.Remove(filepath.Join(dir, "id_rsa.pub"))
	gen("id_ecdsa", "-t", "ecdsa")
	if _, src, _ := Offered(home, ""); src != filepath.Join(dir, "id_ecdsa") {
		t.Fatalf("ssh's order is id_rsa, id_ecdsa, id_ed25519: got %s", src)
	}
}
