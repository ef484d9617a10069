package cli_test

// End-to-end tests of devgate cp -r --via s3: a folder through the lab's S3
// (gofakes3 behind SigV4), curl on the "instance" (this machine, behind
// the lab's real sshd).

import (
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labs3"
)

// s3Tree writes the folder the relay tests copy: makeTree's 60 files in
// nested directories (modes 0600/0644, an empty file, a few of 3 MiB), a
// folder of symbolic links and sub-second mtimes (linkTree), an empty
// directory, and a 12 MiB file with a sub-second mtime that goes as a
// multipart upload in 5 MiB parts. It returns the files' total size and
// linkTree's mtimes.
func s3Tree(t *testing.T, root string) (int64, map[string]time.Time) {
	t.Helper()
	makeTree(t, filepath.Join(root, "data"))
	times := linkTree(t, filepath.Join(root, "links"))
	if err := os.MkdirAll(filepath.Join(root, "empty", "deeper"), 0o755); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(root, "big.bin")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	io.CopyN(f, rand.NewChaCha8([32]byte{9}), 12<<20+4321)
	f.Close()
	os.Chmod(big, 0o640)
	mt := time.Unix(1700001234, 250000000)
	os.Chtimes(big, mt, mt)
	var total int64
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			total += fi.Size()
		}
		return nil
	})
	return total, times
}

// checkS3Tree checks a copy of s3Tree: contents, modes, mtimes (the 12 MiB
// file's and linkTree's to the nanosecond), links, the empty directory,
// and no partial file left anywhere.
func checkS3Tree(t *testing.T, src, copy string, times map[string]time.Time) {
	t.Helper()
	sameTree(t, filepath.Join(src, "data"), filepath.Join(copy, "data"))
	checkLinkCopy(t, filepath.Join(copy, "links"), times)
	sameFile(t, filepath.Join(src, "big.bin"), filepath.Join(copy, "big.bin"))
	a, _ := os.Stat(filepath.Join(src, "big.bin"))
	b, _ := os.Stat(filepath.Join(copy, "big.bin"))
	if b.Mode().Perm() != 0o640 || !b.ModTime().Equal(a.ModTime()) {
		t.Errorf("big.bin: mode %v mtime %v, want 0640 %v", b.Mode(), b.ModTime().UnixNano(), a.ModTime().UnixNano())
	}
	if fi, err := os.Stat(filepath.Join(copy, "empty", "deeper")); err != nil || !fi.IsDir() {
		t.Errorf("empty directory not copied: %v", err)
	}
	filepath.Walk(copy, func(p string, fi os.FileInfo, err error) error {
		if err == nil && strings.Contains(p, ".devgate-") {
			t.Errorf("left behind: %s", p)
		}
		return nil
	})
}

// TestCpS3RelayRecursive: cp -r --via s3 both ways keeps what cp -r through
// the tunnel keeps (contents, modes, sub-second mtimes, symbolic links,
// empty directories), over one session (one StartSession per copy, however
// many files), leaves no object in the bucket and no journal, and the same
// command again copies nothing.
func TestCpS3RelayRecursive(t *testing.T) {
	s3 := labs3.New("relay")
	e := newE2E(t, lab.Options{Services: []lab.Service{s3}})
	ctx := ctxFor(t, 2*time.Minute)
	src := filepath.Join(t.TempDir(), "tree")
	total, times := s3Tree(t, src)
	const files, links = 63, 4
	args := []string{"-r", "--via", "s3", "--bucket", "relay", "-j", "4", "--chunk-size", "5242880"}
	check := func(what string, s cpSummary, sessions0 int) {
		t.Helper()
		if s.Via != "s3" || s.Files != files || s.Links != links || s.Moved != total || s.Skipped != 0 {
			t.Fatalf("%s summary %+v, want %d files, %d links, %d bytes moved via s3", what, s, files, links, total)
		}
		if n := e.l.Calls("StartSession") - sessions0; n != 1 {
			t.Fatalf("%s opened %d sessions, want 1 for the whole tree", what, n)
		}
		if keys, err := s3.Objects("relay"); err != nil || len(keys) != 0 {
			t.Fatalf("%s left objects in the bucket: %v %v", what, keys, err)
		}
		if js, _ := filepath.Glob(filepath.Join(e.home, ".cache", "devgate", "cp", "relay-*")); len(js) != 0 {
			t.Fatalf("%s left journals: %v", what, js)
		}
	}

	remoteParent := t.TempDir()
	n0 := e.l.Calls("StartSession")
	s := e.cp(t, ctx, nil, append(args, src, "gpu1:"+remoteParent)...)
	check("upload", s, n0)
	checkS3Tree(t, src, filepath.Join(remoteParent, "tree"), times)

	down := filepath.Join(t.TempDir(), "copy") // a new directory: the tree's copy itself
	n0 = e.l.Calls("StartSession")
	s = e.cp(t, ctx, nil, append(args, "gpu1:"+filepath.Join(remoteParent, "tree"), down)...)
	check("download", s, n0)
	checkS3Tree(t, src, down, times)

	// The same command again (into an existing directory: the copy goes
	// into it, as cp -r does): every file is in place.
	downParent := filepath.Dir(down)
	n0 = e.l.Calls("StartSession")
	s = e.cp(t, ctx, nil, append(args, "gpu1:"+filepath.Join(remoteParent, "tree"), downParent)...)
	check("download into a directory", s, n0)
	checkS3Tree(t, src, filepath.Join(downParent, "tree"), times)
	s = e.cp(t, ctx, nil, append(args, "gpu1:"+filepath.Join(remoteParent, "tree"), downParent)...)
	if s.Skipped != files || s.Moved != 0 {
		t.Fatalf("rerun summary %+v, want all %d files skipped", s, files)
	}
	in, _ := e.l.Instance("gpu1")
	if _, stderr, code := e.devgate(ctx, nil, nil, append([]string{"cp", "--user", in.User}, append(args, src, "gpu1:"+remoteParent)...)...); code != 0 ||
		!strings.Contains(stderr, "devgate: nothing to copy: 63 files already in place (same size and mtime)\n") {
		t.Fatalf("upload rerun: exit %d\n%s", code, stderr)
	}
}

// TestCpS3RelayRecursiveBadInput: each bad folder copy through the relay
// has its message and exit code and changes nothing.
func TestCpS3RelayRecursiveBadInput(t *testing.T) {
	s3 := labs3.New("relay")
	e := newE2E(t, lab.Options{Services: []lab.Service{s3}})
	ctx := ctxFor(t, time.Minute)
	src := filepath.Join(t.TempDir(), "tree")
	makeTree(t, src)
	file := filepath.Join(t.TempDir(), "a-file")
	os.WriteFile(file, []byte("keep me\n"), 0o644)
	relay := []string{"-r", "--via", "s3", "--bucket", "relay"}
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"upload onto a file", []string{src, "gpu1:" + file}, 2, "is not a directory"},
		{"download onto a file", []string{"gpu1:" + src, file}, 2, "is not a directory"},
		{"remote source missing", []string{"gpu1:/nonexistent/dir", t.TempDir()}, 25, "does not exist on the instance"},
		{"local source missing", []string{"/nonexistent/dir", "gpu1:/tmp/"}, 22, "does not exist here"},
		{"part size below S3's minimum", []string{"--chunk-size", "1048576", src, "gpu1:" + t.TempDir()}, 2, "minimum part size"},
		{"directory without -r", []string{"gpu1:" + src, t.TempDir()}, 2, "add -r"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append(relay, c.args...)
			if c.name == "directory without -r" {
				args = append([]string{"--via", "s3", "--bucket", "relay"}, c.args...)
			}
			stderr, code := e.cpFail(t, ctx, args...)
			if code != c.code || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit %d, want %d with %q:\n%s", code, c.code, c.want, stderr)
			}
			if b, _ := os.ReadFile(file); string(b) != "keep me\n" {
				t.Fatalf("the file was changed: %q", b)
			}
		})
	}
	if keys, _ := s3.Objects("relay"); len(keys) != 0 {
		t.Fatalf("objects left: %v", keys)
	}
}
