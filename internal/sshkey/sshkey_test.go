package sshkey

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devgate/devgate/internal/exitcode"
)

func TestEnsureCreatesThenReuses(t *testing.T) {
	home := t.TempDir()
	p := DefaultPath(home)
	k, err := Ensure(p)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Created {
		t.Fatal("first Ensure did not report Created")
	}
	for path, want := range map[string]os.FileMode{DefaultDir(home): 0o700, p: 0o600, p + ".pub": 0o644} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %04o, want %04o", path, got, want)
		}
	}
	// The real ssh-keygen reads the private key and derives the same public key.
	out, err := exec.Command("ssh-keygen", "-y", "-f", p).Output()
	if err != nil {
		t.Fatalf("ssh-keygen -y: %v", err)
	}
	if got := strings.Fields(string(out)); len(got) < 2 || !strings.HasPrefix(k.Public.AuthorizedKey, got[0]+" "+got[1]) {
		t.Fatalf("ssh-keygen says %q, Ensure says %q", out, k.Public.AuthorizedKey)
	}
	k2, err := Ensure(p)
	if err != nil {
		t.Fatal(err)
	}
	if k2.Created || k2.Public.AuthorizedKey != k.Public.AuthorizedKey {
		t.Fatalf("second Ensure changed the key: created=%v %q vs %q", k2.Created, k2.Public.AuthorizedKey, k.Public.AuthorizedKey)
	}
	lp, err := LoadPublic(p)
	if err != nil || lp.Fingerprint != k.Public.Fingerprint || !strings.HasPrefix(lp.Fingerprint, "SHA256:") {
		t.Fatalf("LoadPublic = %+v, %v", lp, err)
	}
}

func TestEnsureAcceptsSSHKeygenKeyAndDerivesPub(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "k")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "mine", "-f", p).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	want, _ := os.ReadFile(p + ".pub")
	if err := os.Remove(p + ".pub"); err != nil {
		t.Fatal(err)
	}
	k, err := Ensure(p)
	if err != nil {
		t.Fatal(err)
	}
	if k.Created {
		t.Fatal("Ensure created a key over an existing one")
	}
	w := strings.Fields(string(want))
	if !strings.HasPrefix(k.Public.AuthorizedKey, w[0]+" "+w[1]) {
		t.Fatalf("derived %q, want %q", k.Public.AuthorizedKey, want)
	}
	if _, err := os.Stat(p + ".pub"); err != nil {
		t.Fatalf(".pub not rewritten: %v", err)
	}
}

func TestPermissionChecks(t *testing.T) {
	home := t.TempDir()
	p := DefaultPath(home)
	if _, err := Ensure(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	err := CheckPermissions(p)
	var e *exitcode.Error
	if !errors.As(err, &e) || e.Class != exitcode.Config || !strings.Contains(e.Hint, "chmod 600") {
		t.Fatalf("0644 key: got %v", err)
	}
	if _, err := Ensure(p); err == nil {
		t.Fatal("Ensure accepted a 0644 key")
	}
	os.Chmod(p, 0o600)
	os.Chmod(DefaultDir(home), 0o777)
	if err := CheckPermissions(p); err == nil || !strings.Contains(exitcode.HintOf(err), "chmod 700") {
		t.Fatalf("0777 dir: got %v", err)
	}
	os.Chmod(DefaultDir(home), 0o700)
	if err := CheckPermissions(p); err != nil {
		t.Fatalf("fixed perms: %v", err)
	}
	if err := CheckPermissions(filepath.Join(home, "nope")); err == nil {
		t.Fatal("missing key passed")
	}
}

func TestLoadPublicRejectsGarbage(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "k")
	os.WriteFile(p+".pub", []byte("not a key\n"), 0o644)
	if _, err := LoadPublic(p); err == nil || exitcode.Code(err) != int(exitcode.Config) {
		t.Fatalf("garbage .pub: %v", err)
	}
	if _, err := LoadPublic(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing .pub passed")
	}
}

func FuzzLoadPublic(f *testing.F) {
	f.Add([]byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl x\n"))
	f.Add([]byte(""))
	f.Add([]byte("ssh-rsa AAAA"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "k.pub")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		pub, err := LoadPublic(p)
		if err == nil && (pub.Key == nil || pub.AuthorizedKey == "") {
			t.Fatal("nil key without error")
		}
	})
}

func TestEnsureConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "devgate", "id_ed25519")
	const n = 20
	keys := make(chan Key, n)
	errs := make(chan error, n)
	for range n {
		go func() {
			k, err := Ensure(path)
			if err != nil {
				errs <- err
				return
			}
			keys <- k
		}()
	}
	var first string
	created := 0
	for range n {
		select {
		case err := <-errs:
			t.Fatalf("concurrent Ensure: %v", err)
		case k := <-keys:
			if first == "" {
				first = k.Public.AuthorizedKey
			}
			if k.Public.AuthorizedKey != first {
				t.Fatalf("two different keys: %q and %q", first, k.Public.AuthorizedKey)
			}
			if k.Created {
				created++
			}
		}
	}
	if created != 1 {
		t.Fatalf("%d callers created the key, want 1", created)
	}
}
