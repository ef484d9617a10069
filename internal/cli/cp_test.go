package cli_test

// End-to-end tests of devgate cp: devgate (this test binary) → devgate-lab
// in-process → real sshd with internal-sftp.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labtest"
)

type cpSummary struct {
	Files     int     `json:"files"`
	Bytes     int64   `json:"bytes"`
	Moved     int64   `json:"bytes_moved"`
	Resumed   int64   `json:"resumed_bytes"`
	Refetched int     `json:"refetched_chunks"`
	Restarts  int     `json:"restarts"`
	Sessions  int     `json:"sessions"`
	Seconds   float64 `json:"seconds"`
	Via       string  `json:"via"`
}

// cp runs devgate cp with --json and returns the summary; it fails the test on a non-zero exit.
func (e *e2e) cp(t *testing.T, ctx context.Context, env []string, args ...string) cpSummary {
	t.Helper()
	in, _ := e.l.Instance("gpu1")
	out, stderr, code := e.devgate(ctx, nil, env, append([]string{"cp", "--json", "--user", in.User}, args...)...)
	if code != 0 {
		t.Fatalf("devgate cp %v: exit %d\n%s", args, code, stderr)
	}
	var s cpSummary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("cp --json: %v\n%s", err, out)
	}
	return s
}

// cpFail runs devgate cp expecting failure and returns stderr and the exit code.
func (e *e2e) cpFail(t *testing.T, ctx context.Context, args ...string) (string, int) {
	t.Helper()
	in, _ := e.l.Instance("gpu1")
	out, stderr, code := e.devgate(ctx, nil, nil, append([]string{"cp", "--user", in.User}, args...)...)
	if code == 0 {
		t.Fatalf("devgate cp %v succeeded, want failure\n%s", args, stderr)
	}
	if out != "" {
		t.Errorf("stdout on failure: %q", out)
	}
	return stderr, code
}

func sameFile(t *testing.T, a, b string) {
	t.Helper()
	if fileSum(t, a) != fileSum(t, b) {
		t.Fatalf("%s and %s differ", a, b)
	}
}

func TestCpFileBothWays(t *testing.T) {
	e := newE2E(t, lab.Options{})
	ctx := ctxFor(t, 2*time.Minute)
	src, _ := randFile(t, 20<<20+12345)
	os.Chmod(src, 0o640)
	mt := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	os.Chtimes(src, mt, mt)
	remote := filepath.Join(t.TempDir(), "on-instance.bin") // "on the instance": the lab's sshd runs here

	s := e.cp(t, ctx, nil, "-j", "4", "--chunk-size", "1048576", src, "gpu1:"+remote)
	sameFile(t, src, remote)
	if s.Moved != 20<<20+12345 || s.Sessions != 4 || s.Files != 1 {
		t.Fatalf("upload summary %+v", s)
	}
	st, _ := os.Stat(remote)
	if st.Mode().Perm() != 0o640 || !st.ModTime().Equal(mt) {
		t.Fatalf("upload kept mode %v mtime %v", st.Mode(), st.ModTime())
	}
	if _, err := os.Stat(remote + ".devgate-part"); !os.IsNotExist(err) {
		t.Fatalf("partial file left: %v", err)
	}

	down := t.TempDir()
	s = e.cp(t, ctx, nil, "-j", "3", "--chunk-size", "1048576", "gpu1:"+remote, down)
	got := filepath.Join(down, "on-instance.bin")
	sameFile(t, src, got)
	if s.Moved != 20<<20+12345 {
		t.Fatalf("download summary %+v", s)
	}
	if st, _ := os.Stat(got); st.Mode().Perm() != 0o640 || !st.ModTime().Equal(mt) {
		t.Fatalf("download kept mode %v mtime %v", st.Mode(), st.ModTime())
	}
	if ents, _ := os.ReadDir(down); len(ents) != 1 {
		t.Fatalf("download left extra files: %v", ents)
	}
	// The same command again moves nothing.
	s = e.cp(t, ctx, nil, "-j", "3", "--chunk-size", "1048576", "gpu1:"+remote, down)
	if s.Moved != 0 || s.Resumed != 20<<20+12345 {
		t.Fatalf("second run summary %+v", s)
	}
}

// makeTree writes a folder of small and medium files in nested directories.
func makeTree(t *testing.T, root string) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 60 {
		dir := filepath.Join(root, []string{"", "a", "a/b", "c"}[i%4])
		os.MkdirAll(dir, 0o755)
		n := r.IntN(40000)
		if i%20 == 0 {
			n = 3<<20 + r.IntN(100000)
		}
		if i == 7 {
			n = 0
		}
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		p := filepath.Join(dir, "f"+strings.Repeat("x", i%3)+string(rune('a'+i%26))+".dat")
		os.WriteFile(p, b, 0o600|os.FileMode(i%2)*0o044)
		mt := time.Unix(1700000000+int64(i)*3600, 0)
		os.Chtimes(p, mt, mt)
	}
	os.Chmod(filepath.Join(root, "c"), 0o750)
}

// sameTree compares two trees: names, contents, modes, file mtimes.
func sameTree(t *testing.T, a, b string) {
	t.Helper()
	n := 0
	filepath.Walk(a, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(a, p)
		q := filepath.Join(b, rel)
		gi, err := os.Stat(q)
		if err != nil {
			t.Fatalf("%s missing in the copy", rel)
		}
		if fi.IsDir() != gi.IsDir() {
			t.Fatalf("%s: dir %v vs %v", rel, fi.IsDir(), gi.IsDir())
		}
		if !fi.IsDir() {
			n++
			x, _ := os.ReadFile(p)
			y, _ := os.ReadFile(q)
			if !bytes.Equal(x, y) {
				t.Fatalf("%s differs", rel)
			}
			if fi.Mode().Perm() != gi.Mode().Perm() || fi.ModTime().Unix() != gi.ModTime().Unix() {
				t.Fatalf("%s: mode %v mtime %v, copy %v %v", rel, fi.Mode(), fi.ModTime(), gi.Mode(), gi.ModTime())
			}
		}
		return nil
	})
	if n == 0 {
		t.Fatal("empty tree")
	}
}

func TestCpRecursiveBothWays(t *testing.T) {
	e := newE2E(t, lab.Options{})
	ctx := ctxFor(t, 2*time.Minute)
	src := filepath.Join(t.TempDir(), "data")
	makeTree(t, src)
	remoteParent := t.TempDir()
	s := e.cp(t, ctx, nil, "-r", "-j", "4", "--chunk-size", "1048576", src, "gpu1:"+remoteParent)
	sameTree(t, src, filepath.Join(remoteParent, "data"))
	if s.Files != 60 {
		t.Fatalf("upload summary %+v", s)
	}
	down := filepath.Join(t.TempDir(), "copy")
	e.cp(t, ctx, nil, "-r", "-j", "4", "--chunk-size", "1048576", "gpu1:"+filepath.Join(remoteParent, "data"), down)
	sameTree(t, src, down)
}

var _ = exec.Command
var _ = io.Discard
var _ = labtest.Fast
