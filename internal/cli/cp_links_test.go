package cli_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/lab"
)

// linkTree writes a folder with symbolic links (relative, absolute, to a
// directory, dangling) and files and directories whose mtimes have
// sub-second parts.
func linkTree(t *testing.T, root string) map[string]time.Time {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "sub"), 0o755))
	must(os.WriteFile(filepath.Join(root, "a.txt"), []byte("alpha\n"), 0o644))
	must(os.WriteFile(filepath.Join(root, "sub", "b.bin"), make([]byte, 300<<10), 0o600))
	must(os.Symlink("a.txt", filepath.Join(root, "rel-link")))
	must(os.Symlink("/etc/hostname", filepath.Join(root, "abs-link")))
	must(os.Symlink("sub", filepath.Join(root, "dir-link")))
	must(os.Symlink("no-such-file", filepath.Join(root, "dangling")))
	times := map[string]time.Time{
		"a.txt":     time.Unix(1700000000, 123456789),
		"sub/b.bin": time.Unix(1700000100, 987654321),
		"sub":       time.Unix(1700000200, 500000000),
	}
	for rel, mt := range times {
		must(os.Chtimes(filepath.Join(root, rel), mt, mt))
	}
	return times
}

// checkLinkCopy checks a copy of linkTree: links are links with the same
// targets, and mtimes keep their nanoseconds.
func checkLinkCopy(t *testing.T, root string, times map[string]time.Time) {
	t.Helper()
	for name, want := range map[string]string{"rel-link": "a.txt", "abs-link": "/etc/hostname", "dir-link": "sub", "dangling": "no-such-file"} {
		p := filepath.Join(root, name)
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s: not a symbolic link in the copy (%v, %v)", name, err, fi)
			continue
		}
		if got, _ := os.Readlink(p); got != want {
			t.Errorf("%s -> %q, want %q", name, got, want)
		}
	}
	for rel, want := range times {
		fi, err := os.Stat(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(want) {
			t.Errorf("%s: mtime %v, want %v (sub-second part kept)", rel, fi.ModTime().UnixNano(), want.UnixNano())
		}
	}
}

// TestCpRecursiveLinksAndSubsecondMtimes: cp -r copies symbolic links as
// links and keeps sub-second mtimes, up and down; -L copies what links point
// to (a dangling link is left out). The lab's instance is this machine, so
// the "remote" tree is checked with os calls.
func TestCpRecursiveLinksAndSubsecondMtimes(t *testing.T) {
	e := newE2E(t, lab.Options{})
	ctx := ctxFor(t, 2*time.Minute)
	src := filepath.Join(t.TempDir(), "tree")
	times := linkTree(t, src)

	remoteParent := t.TempDir()
	s := e.cp(t, ctx, nil, "-r", "-j", "2", src, "gpu1:"+remoteParent)
	if s.Files != 2 || s.Links != 4 {
		t.Fatalf("upload summary %+v, want 2 files and 4 links", s)
	}
	checkLinkCopy(t, filepath.Join(remoteParent, "tree"), times)

	down := filepath.Join(t.TempDir(), "back")
	s = e.cp(t, ctx, nil, "-r", "-j", "2", "gpu1:"+filepath.Join(remoteParent, "tree"), down)
	if s.Files != 2 || s.Links != 4 {
		t.Fatalf("download summary %+v, want 2 files and 4 links", s)
	}
	checkLinkCopy(t, down, times)

	// -L: the links' targets are copied as files (a link to a directory is not descended into).
	deref := filepath.Join(t.TempDir(), "deref")
	s = e.cp(t, ctx, nil, "-r", "-L", "gpu1:"+filepath.Join(remoteParent, "tree"), deref)
	if s.Links != 0 {
		t.Fatalf("-L summary %+v: links made", s)
	}
	for _, name := range []string{"rel-link", "abs-link"} {
		fi, err := os.Lstat(filepath.Join(deref, name))
		if err != nil || !fi.Mode().IsRegular() {
			t.Errorf("-L: %s is not a regular file (%v %v)", name, err, fi)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(deref, "rel-link")); string(b) != "alpha\n" {
		t.Errorf("-L: rel-link holds %q", b)
	}
	if _, err := os.Lstat(filepath.Join(deref, "dangling")); !os.IsNotExist(err) {
		t.Errorf("-L: a dangling link was copied: %v", err)
	}
}
