package cli_test

// End-to-end tests of devgate cp: devgate (this test binary) → devgate-lab
// in-process → real sshd with internal-sftp.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labs3"
	"github.com/devgate/devgate/internal/lab/labtest"
)

type cpSummary struct {
	Files     int     `json:"files"`
	Bytes     int64   `json:"bytes"`
	Moved     int64   `json:"bytes_moved"`
	Resumed   int64   `json:"resumed_bytes"`
	Skipped   int     `json:"skipped_files"`
	Links     int     `json:"symlinks"`
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
	mt := time.Date(2024, 3, 1, 12, 0, 0, 123456789, time.UTC) // the sub-second part goes up (touch) and comes back (find)
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
	// The same command again moves nothing: the file is skipped (not "resumed"), over no session.
	s = e.cp(t, ctx, nil, "-j", "3", "--chunk-size", "1048576", "gpu1:"+remote, down)
	if s.Moved != 0 || s.Resumed != 0 || s.Skipped != 1 || s.Sessions != 0 {
		t.Fatalf("second run summary %+v", s)
	}
	in, _ := e.l.Instance("gpu1")
	if _, stderr, code := e.devgate(ctx, nil, nil, "cp", "--user", in.User, "-j", "3", "gpu1:"+remote, down); code != 0 ||
		!strings.Contains(stderr, "devgate: nothing to copy: 1 file already in place (same size and mtime)\n") {
		t.Fatalf("second run report: exit %d\n%s", code, stderr)
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

// slowLab caps each session so that a copy lasts long enough to interrupt.
func slowLab(t *testing.T, perSession int64) *e2e {
	f := labtest.Fast()
	f.BandwidthCap = perSession
	return newE2E(t, lab.Options{Faults: f})
}

// journaled counts the chunk lines of a journal.
func journaled(t *testing.T, path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("journal: %v", err)
	}
	return int64(strings.Count(string(b), "\nchunk "))
}

// startCp starts devgate cp in the background.
func (e *e2e) startCp(t *testing.T, ctx context.Context, args ...string) (*exec.Cmd, *bytes.Buffer) {
	in, _ := e.l.Instance("gpu1")
	cmd := exec.CommandContext(ctx, "devgate", append([]string{"cp", "--user", in.User}, args...)...)
	cmd.Env = e.environ
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &stderr
}

// waitJournal waits until the journal at p records at least n chunks.
func waitJournal(t *testing.T, p string, n int64) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(p); err == nil && int64(strings.Count(string(b), "\nchunk ")) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("journal %s never reached %d chunks", p, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitQuiet waits until p has not changed for a second: after a kill -9 of
// devgate, the instance's sftp-server (whose connection lives on until the
// session times out) still writes the chunks it had already received, and a
// test that rewrites the partial must not race with those writes.
func waitQuiet(t *testing.T, p string) {
	deadline := time.Now().Add(30 * time.Second)
	var last os.FileInfo
	since := time.Now()
	for {
		fi, err := os.Stat(p)
		if err == nil && last != nil && fi.Size() == last.Size() && fi.ModTime().Equal(last.ModTime()) {
			if time.Since(since) >= time.Second {
				return
			}
		} else {
			last, since = fi, time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still changes 30 s after the kill", p)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCpResumeAfterKill: kill -9 and Ctrl-C in the middle of a download and
// an upload; the same command again moves only the chunks the journal lacks
// (at most one chunk per session was in flight at the kill) and the result
// is byte-exact.
func TestCpResumeAfterKill(t *testing.T) {
	e := slowLab(t, 4<<20)
	const size, chunk, j = 24 << 20, 1 << 20, 3
	src, _ := randFile(t, size)
	os.Chmod(src, 0o644)
	for _, c := range []struct {
		name string
		sig  os.Signal
		up   bool
	}{{"download-kill9", os.Kill, false}, {"download-sigint", os.Interrupt, false}, {"upload-kill9", os.Kill, true}} {
		t.Run(c.name, func(t *testing.T) {
			ctx := ctxFor(t, 2*time.Minute) // each subtest its own bound (one shared bound ran out under load)
			dir := t.TempDir()
			dst := filepath.Join(dir, "out.bin")
			args := []string{"-j", "3", "--chunk-size", "1048576"}
			jpath := dst + ".devgate-journal"
			if c.up {
				args = append(args, src, "gpu1:"+dst)
				jpath = filepath.Join(e.home, ".cache", "devgate", "cp", strings.NewReplacer("/", "_", ":", "_").Replace(e.inst(t, "gpu1")+"_"+dst)+".journal")
			} else {
				args = append(args, "gpu1:"+src, dst)
			}
			cmd, stderr := e.startCp(t, ctx, args...)
			waitJournal(t, jpath, 6)
			cmd.Process.Signal(c.sig)
			err := cmd.Wait()
			if c.sig == os.Interrupt {
				if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
					t.Fatalf("after SIGINT: %v, want exit 130\n%s", err, stderr)
				}
			}
			if st, err := os.Stat(dst + ".devgate-part"); err != nil {
				t.Fatalf("partial file not kept: %v", err)
			} else if st.Mode().Perm() != 0o600 {
				// The source is 0644 and this test's umask 022: the partial
				// must not be readable by others while it waits for the rerun.
				t.Fatalf("partial file left %v, want 0600", st.Mode())
			}
			if _, err := os.Stat(dst); !os.IsNotExist(err) {
				t.Fatalf("destination appeared before the copy finished: %v", err)
			}
			d := journaled(t, jpath)
			if d >= size/chunk {
				t.Fatalf("the copy finished before the kill (%d chunks journaled)", d)
			}
			// Ctrl-C also keeps what arrived of the chunks in flight (parts);
			// kill -9 leaves whole chunks only.
			parts := journalParts(t, jpath)
			if c.sig == os.Kill && parts != 0 {
				t.Fatalf("kill -9 journaled %d bytes of parts", parts)
			}
			if !c.up {
				// The rerun spells the destination another way: the same file, the same journal.
				args[len(args)-1] = dir + "/./out.bin"
			}
			s := e.cp(t, ctx, nil, args...)
			sameFile(t, src, dst)
			if kept := d*chunk + parts; s.Moved != size-kept || s.Resumed != kept {
				t.Fatalf("rerun moved %d resumed %d, want %d and %d (journal had %d chunks and %d bytes of parts)", s.Moved, s.Resumed, size-kept, kept, d, parts)
			}
			t.Logf("%s: %d of %d chunks and %d bytes of parts journaled at the kill; rerun moved %d bytes", c.name, d, size/chunk, parts, s.Moved)
			if _, err := os.Stat(jpath); !os.IsNotExist(err) {
				t.Fatalf("journal left after success")
			}
		})
	}
}

// TestCpCorruptChunkRefetched: a byte flipped on the instance (the lab's
// corrupt-chunk fault: its SFTP server hands out, or stores, one wrong byte
// in chunk 5) is caught by the sha256 comparison and the chunk is moved
// again, both ways.
func TestCpCorruptChunkRefetched(t *testing.T) {
	const off = 5<<20 + 1234 // in chunk 5 of 1 MiB chunks
	f := labtest.Fast()
	f.CorruptChunk = fmt.Sprintf("/data.bin:%d,/up.bin.devgate-part:%d", off, off)
	e := newE2E(t, lab.Options{Faults: f})
	ctx := ctxFor(t, time.Minute)
	src, _ := randFile(t, 10<<20)
	dst := filepath.Join(t.TempDir(), "down.bin")
	s := e.cp(t, ctx, nil, "-j", "2", "--chunk-size", "1048576", "gpu1:"+src, dst)
	sameFile(t, src, dst)
	if s.Refetched != 1 || s.Moved != 11<<20 {
		t.Fatalf("download summary %+v, want one chunk fetched again", s)
	}
	up := filepath.Join(t.TempDir(), "up.bin")
	s = e.cp(t, ctx, nil, "-j", "2", "--chunk-size", "1048576", src, "gpu1:"+up)
	sameFile(t, src, up)
	if s.Refetched != 1 || s.Moved != 11<<20 {
		t.Fatalf("upload summary %+v, want one chunk sent again", s)
	}
}

// TestCpSourceChangedRestarts: a source that changes while it is copied is
// detected (size/mtime) and the file is copied again; the result is the new content.
func TestCpSourceChangedRestarts(t *testing.T) {
	e := slowLab(t, 4<<20)
	ctx := ctxFor(t, time.Minute)
	src, _ := randFile(t, 12<<20)
	dst := filepath.Join(t.TempDir(), "out.bin")
	in, _ := e.l.Instance("gpu1")
	cmd := exec.CommandContext(ctx, "devgate", "cp", "--json", "--user", in.User, "-j", "2", "--chunk-size", "1048576", "gpu1:"+src, dst)
	cmd.Env = e.environ
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitJournal(t, dst+".devgate-journal", 2)
	f, _ := os.OpenFile(src, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte("appended while copying"))
	f.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("cp: %v\n%s", err, stderr.String())
	}
	var s cpSummary
	json.Unmarshal(stdout.Bytes(), &s)
	sameFile(t, src, dst)
	if s.Restarts < 1 {
		t.Fatalf("summary %+v: the change was not detected", s)
	}
}

// TestCpBadCases: each failure has its message and exit code, nothing on
// stdout, and nothing half-written in place.
func TestCpBadCases(t *testing.T) {
	e := newE2E(t, lab.Options{})
	ctx := ctxFor(t, time.Minute)
	src, _ := randFile(t, 1000)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "data.bin"), 0o755) // a directory where the file would go
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"remote source missing", []string{"gpu1:/nonexistent/x.bin", dir}, 25, "does not exist on the instance"},
		{"local source missing", []string{"/nonexistent/x.bin", "gpu1:/tmp/"}, 22, "does not exist here"},
		{"directory without -r", []string{"gpu1:" + filepath.Dir(src), dir}, 2, "add -r"},
		{"destination is a directory", []string{"gpu1:" + src, dir}, 2, "is a directory"},
		{"both local", []string{src, dir}, 2, "exactly one of SRC and DST"},
		{"unknown target", []string{"nosuch:" + src, dir}, 12, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stderr, code := e.cpFail(t, ctx, c.args...)
			if code != c.code || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit %d, want %d with %q:\n%s", code, c.code, c.want, stderr)
			}
		})
	}
}

var _ = io.Discard

// TestCpDiskFull: a download into a full file system fails with a clear
// error and keeps the partial file; with room again the same command resumes.
func TestCpDiskFull(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("this test mounts a small tmpfs (needs root, as the lab's sshd does): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	e := newE2E(t, lab.Options{})
	ctx := ctxFor(t, time.Minute)
	src, _ := randFile(t, 10<<20)
	dst := filepath.Join(mnt, "out.bin")
	args := []string{"-j", "2", "--chunk-size", "1048576", "gpu1:" + src, dst}
	stderr, code := e.cpFail(t, ctx, args...)
	if code != 22 || !strings.Contains(stderr, "no space left") || !strings.Contains(stderr, "partial file kept") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	if _, err := os.Stat(dst + ".devgate-part"); err != nil {
		t.Fatalf("partial file not kept: %v", err)
	}
	d := journaled(t, dst+".devgate-journal")
	if out, err := exec.Command("mount", "-o", "remount,size=32m", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v %s", err, out)
	}
	s := e.cp(t, ctx, nil, args...)
	sameFile(t, src, dst)
	if d == 0 || s.Resumed != d<<20 {
		t.Fatalf("rerun %+v after %d journaled chunks", s, d)
	}
}

// TestCpInstanceDiskFull: an upload to a full file system on the instance
// says so, with the free space (SFTP only answers SSH_FX_FAILURE: devgate
// asks statvfs@openssh.com), exit 25, the partial file kept; with room again
// the same command resumes.
func TestCpInstanceDiskFull(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("this test mounts a small tmpfs (needs root, as the lab's sshd does): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	e := newE2E(t, lab.Options{})
	ctx := ctxFor(t, time.Minute)
	src, _ := randFile(t, 10<<20)
	dst := filepath.Join(mnt, "out.bin")
	args := []string{"-j", "2", "--chunk-size", "1048576", src, "gpu1:" + dst}
	stderr, code := e.cpFail(t, ctx, args...)
	if code != 25 || !strings.Contains(stderr, "no space left on the instance") || !strings.Contains(stderr, " free (partial file kept)") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	if _, err := os.Stat(dst + ".devgate-part"); err != nil {
		t.Fatalf("partial file not kept: %v", err)
	}
	if out, err := exec.Command("mount", "-o", "remount,size=32m", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v %s", err, out)
	}
	s := e.cp(t, ctx, nil, args...)
	sameFile(t, src, dst)
	if s.Resumed == 0 {
		t.Fatalf("rerun %+v did not resume", s)
	}
}

// TestCpPermissionDenied: a destination the user may not write, on the
// instance and here. The lab's sshd and devgate run as root, which file modes
// do not stop, so the directories are made immutable (chattr +i, EPERM).
func TestCpPermissionDenied(t *testing.T) {
	e := newE2E(t, lab.Options{})
	ctx := ctxFor(t, time.Minute)
	locked := t.TempDir()
	if out, err := exec.Command("chattr", "+i", locked).CombinedOutput(); err != nil {
		t.Fatalf("chattr +i (needs root and ext4/xfs/btrfs): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("chattr", "-i", locked).Run() })
	src, _ := randFile(t, 1000)
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
		hint string // the hint names the side that refused
	}{
		{"on the instance", []string{src, "gpu1:" + filepath.Join(locked, "new.bin")}, 25, "on the instance", "--user"},
		{"here", []string{"gpu1:" + src, filepath.Join(locked, "new.bin")}, 22, "here", "of " + locked + " here"},
	} {
		t.Run(c.name, func(t *testing.T) {
			stderr, code := e.cpFail(t, ctx, c.args...)
			if code != c.code || !strings.Contains(stderr, "permission denied") || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit %d, want %d:\n%s", code, c.code, stderr)
			}
			if !strings.Contains(stderr, c.hint) || (c.hint != "--user" && strings.Contains(stderr, "--user")) {
				t.Fatalf("the hint does not name the side that refused (want %q):\n%s", c.hint, stderr)
			}
		})
	}
}

// TestCpSurvivesDrops: WebSockets dropped during the copy are resumed under
// it; the copy completes byte-exact without moving a chunk twice.
func TestCpSurvivesDrops(t *testing.T) {
	f := labtest.Fast()
	f.BandwidthCap = 2 << 20
	f.DropEvery = 1500 * time.Millisecond
	e := newE2E(t, lab.Options{Faults: f})
	ctx := ctxFor(t, time.Minute)
	src, _ := randFile(t, 12<<20)
	dst := filepath.Join(t.TempDir(), "out.bin")
	s := e.cp(t, ctx, nil, "-j", "2", "--chunk-size", "1048576", "gpu1:"+src, dst)
	sameFile(t, src, dst)
	if e.l.Mgs().Drops() < 2 {
		t.Fatalf("only %d drops: the fault was not exercised", e.l.Mgs().Drops())
	}
	if s.Moved != 12<<20 {
		t.Fatalf("summary %+v", s)
	}
}

// TestCpS3Relay: --via s3 both ways through the lab's S3: curl on the
// instance with presigned URLs, byte-exact, and the object deleted (kept with --keep).
func TestCpS3Relay(t *testing.T) {
	s3 := labs3.New("relay")
	e := newE2E(t, lab.Options{Services: []lab.Service{s3}})
	ctx := ctxFor(t, time.Minute)
	src, _ := randFile(t, 40<<20+777)
	mt := time.Unix(1700000000, 0)
	os.Chtimes(src, mt, mt)
	up := filepath.Join(t.TempDir(), "up.bin")
	s := e.cp(t, ctx, nil, "--via", "s3", "--bucket", "relay", src, "gpu1:"+up)
	sameFile(t, src, up)
	if s.Via != "s3" || s.Moved != 40<<20+777 {
		t.Fatalf("upload summary %+v", s)
	}
	if st, _ := os.Stat(up); !st.ModTime().Equal(mt) {
		t.Fatalf("mtime %v", st.ModTime())
	}
	down := t.TempDir()
	// auto picks S3 for a large file when a bucket is configured.
	s = e.cp(t, ctx, []string{"DEVGATE_BUCKET=relay"}, "--keep", "gpu1:"+up, down)
	sameFile(t, src, filepath.Join(down, "up.bin"))
	if s.Via != "s3" {
		t.Fatalf("auto did not relay through S3: %+v", s)
	}
	keys, err := s3.Objects("relay")
	if err != nil || len(keys) != 1 {
		t.Fatalf("objects after one --keep copy: %v %v", keys, err)
	}
	if s3.Requests() < 10 {
		t.Fatalf("only %d S3 requests", s3.Requests())
	}
	stderr, code := e.cpFail(t, ctx, "--via", "s3", "--bucket", "nosuch", "gpu1:"+up, down)
	if code != 12 || !strings.Contains(stderr, "bucket nosuch does not exist") {
		t.Fatalf("missing bucket: exit %d\n%s", code, stderr)
	}
}

// TestCpRerunWithCompleteJournal: the journal lists every chunk (a Ctrl-C or a
// lost session during the final verification, or a verification that
// failed): the same command again verifies and finishes, fetching again only
// the chunks whose bytes are wrong, uploads and downloads. Before the fix the
// rerun sat at 100 % forever (nothing was queued to run the final check).
func TestCpRerunWithCompleteJournal(t *testing.T) {
	e := slowLab(t, 4<<20)
	const size, chunk = 8 << 20, 1 << 20
	src, _ := randFile(t, size)
	content, _ := os.ReadFile(src)
	for _, c := range []struct {
		name    string
		up      bool
		corrupt bool // the partial has a wrong byte (a verification that failed)
	}{{"download-verified", false, false}, {"download-bad-chunk", false, true}, {"upload-verified", true, false}, {"upload-bad-chunk", true, true}} {
		t.Run(c.name, func(t *testing.T) {
			ctx := ctxFor(t, 90*time.Second) // a hang fails here instead of running forever
			dst := filepath.Join(t.TempDir(), "out.bin")
			args := []string{"-j", "3", "--chunk-size", "1048576"}
			jpath := dst + ".devgate-journal"
			if c.up {
				args = append(args, src, "gpu1:"+dst)
				jpath = filepath.Join(e.home, ".cache", "devgate", "cp", strings.NewReplacer("/", "_", ":", "_").Replace(e.inst(t, "gpu1")+"_"+dst)+".journal")
			} else {
				args = append(args, "gpu1:"+src, dst)
			}
			// A real journal (its header) from a copy killed part-way.
			cmd, _ := e.startCp(t, ctx, args...)
			waitJournal(t, jpath, 2)
			cmd.Process.Signal(os.Kill)
			cmd.Wait()
			waitQuiet(t, dst+".devgate-part")
			// Every chunk in: the partial holds the bytes, the journal lists them all.
			b := append([]byte(nil), content...)
			if c.corrupt {
				b[5*chunk+100] ^= 0xff
			}
			if err := os.WriteFile(dst+".devgate-part", b, 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(jpath, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			for i := range size / chunk {
				fmt.Fprintf(f, "chunk %d\n", i)
			}
			f.Close()
			s := e.cp(t, ctx, nil, args...)
			sameFile(t, src, dst)
			want := cpSummary{Moved: 0, Refetched: 0}
			if c.corrupt {
				want = cpSummary{Moved: chunk, Refetched: 1}
			}
			if s.Moved != want.Moved || s.Refetched != want.Refetched || s.Resumed != size {
				t.Fatalf("rerun %+v, want moved %d refetched %d resumed %d", s, want.Moved, want.Refetched, size)
			}
			if _, err := os.Stat(jpath); !os.IsNotExist(err) {
				t.Fatalf("journal left after success")
			}
		})
	}
}

// watchCmdlines polls the command lines of every process on this machine
// (the lab's instances are on it) until stop is closed. It returns those
// that contain secret, and how many distinct ones contained mark (a path of
// the copy: proof that the watcher saw the copy's processes at all). It also
// records files matching private that any user could read (mode & 007).
func watchCmdlines(secret, mark, private string, stop <-chan struct{}) <-chan cmdlineWatch {
	res := make(chan cmdlineWatch, 1)
	go func() {
		seen := map[string]bool{}
		var w cmdlineWatch
		for {
			select {
			case <-stop:
				res <- w
				return
			default:
			}
			paths, _ := filepath.Glob("/proc/[0-9]*/cmdline")
			for _, p := range paths {
				b, err := os.ReadFile(p)
				if err != nil || len(b) == 0 {
					continue
				}
				line := strings.ReplaceAll(string(b), "\x00", " ")
				if seen[line] {
					continue
				}
				seen[line] = true
				if strings.Contains(line, mark) {
					w.marked++
				}
				if strings.Contains(line, secret) || strings.Contains(line, mark) && strings.Contains(line, "X-Amz-") {
					w.hits = append(w.hits, line)
				}
			}
			files, _ := filepath.Glob(private)
			for _, f := range files {
				if st, err := os.Stat(f); err == nil {
					w.files++
					if o := fmt.Sprintf("%s %v", f, st.Mode()); st.Mode().Perm()&0o007 != 0 && !seen[o] {
						seen[o] = true
						w.open = append(w.open, o)
					}
				}
			}
		}
	}()
	return res
}

type cmdlineWatch struct {
	hits   []string
	marked int
	files  int      // times a private file was seen
	open   []string // private files others could read
}

// TestCpS3RelayURLsOffCommandLines: on a shared instance anyone can read
// every process's command line (ps). While --via s3 copies both ways, no
// command line on the machine may hold a presigned URL (the bucket's name,
// X-Amz-Signature, X-Amz-Security-Token); the relay's part files and the
// partial file are never readable by other users. The source is 0640: the
// partial takes that mode just before its rename (an umask-022 default, the
// old bug, is 0644).
func TestCpS3RelayURLsOffCommandLines(t *testing.T) {
	bucket := fmt.Sprintf("relay-%x", rand.Uint64())
	s3 := labs3.New(bucket)
	e := newE2E(t, lab.Options{Services: []lab.Service{s3}})
	ctx := ctxFor(t, time.Minute)
	src, _ := randFile(t, 40<<20+777)
	os.Chmod(src, 0o640)
	up := filepath.Join(t.TempDir(), "up.bin")
	stop := make(chan struct{})
	// Path-style URLs (the lab's) carry the bucket; other tests on this
	// machine relay through other buckets.
	watch := watchCmdlines("/"+bucket+"/", filepath.Dir(up), filepath.Join(filepath.Dir(up), "*.devgate-part*"), stop)
	e.cp(t, ctx, nil, "--via", "s3", "--bucket", bucket, "-j", "4", src, "gpu1:"+up)
	sameFile(t, src, up)
	down := filepath.Join(t.TempDir(), "down.bin")
	e.cp(t, ctx, nil, "--via", "s3", "--bucket", bucket, "-j", "4", "gpu1:"+up, down)
	sameFile(t, src, down)
	close(stop)
	w := <-watch
	if w.marked == 0 {
		t.Fatal("the watcher saw none of the copy's commands on the instance: it watched nothing")
	}
	for _, h := range w.hits {
		if len(h) > 300 {
			h = h[:300] + "…"
		}
		t.Errorf("presigned URL on a command line: %s", h)
	}
	if w.files == 0 {
		t.Error("the watcher never saw the partial file on the instance")
	}
	for _, f := range w.open {
		t.Errorf("relay file readable by others on the instance: %s", f)
	}
	if st, _ := os.Stat(up); st.Mode().Perm() != 0o640 {
		t.Errorf("the source's mode was not applied at the end: %v", st.Mode())
	}

	// -r: a folder of small files and one of three parts, both ways, in
	// one command on the instance for the whole tree.
	tree := filepath.Join(t.TempDir(), "tree")
	os.MkdirAll(tree, 0o755)
	for i := range 12 {
		os.WriteFile(filepath.Join(tree, fmt.Sprintf("f%02d", i)), bytes.Repeat([]byte{byte(i)}, 1000*i+1), 0o640)
	}
	os.Link(src, filepath.Join(tree, "big.bin")) // 40 MiB: 3 parts of 16 MiB
	remote := t.TempDir()
	downTree := t.TempDir()
	stop = make(chan struct{})
	watch = watchCmdlines("/"+bucket+"/", remote, filepath.Join(remote, "tree", "*.devgate-part*"), stop)
	watchDown := watchCmdlines("/"+bucket+"/", "tree", filepath.Join(downTree, "tree", "*.devgate-part*"), stop)
	e.cp(t, ctx, nil, "-r", "--via", "s3", "--bucket", bucket, "-j", "4", tree, "gpu1:"+remote)
	e.cp(t, ctx, nil, "-r", "--via", "s3", "--bucket", bucket, "-j", "4", "gpu1:"+filepath.Join(remote, "tree"), downTree)
	close(stop)
	w, wd := <-watch, <-watchDown
	sameFile(t, src, filepath.Join(remote, "tree", "big.bin"))
	sameFile(t, src, filepath.Join(downTree, "tree", "big.bin"))
	if w.marked == 0 {
		t.Fatal("-r: the watcher saw none of the copy's commands on the instance: it watched nothing")
	}
	for _, h := range append(w.hits, wd.hits...) {
		if len(h) > 300 {
			h = h[:300] + "…"
		}
		t.Errorf("-r: presigned URL on a command line: %s", h)
	}
	if w.files == 0 || wd.files == 0 {
		t.Errorf("-r: the watcher never saw a partial file (instance %d, here %d)", w.files, wd.files)
	}
	for _, f := range append(w.open, wd.open...) {
		t.Errorf("-r: relay file readable by others: %s", f)
	}
}

// TestCpStopsWhenSessionGone: the WebSocket drops and the service has lost
// the session (ResumeSession answers DoesNotExistException). devgate stops
// at once with its own message (exit 18) instead of calling ResumeSession
// until --resume-timeout (10 min here); the partial file is kept.
func TestCpStopsWhenSessionGone(t *testing.T) {
	f := labtest.Fast()
	f.BandwidthCap = 1 << 20
	f.DropEvery = 2 * time.Second
	f.ForgetOnDrop = true
	e := newE2E(t, lab.Options{Faults: f})
	ctx := ctxFor(t, 3*time.Minute)
	src, _ := randFile(t, 16<<20)
	dst := filepath.Join(t.TempDir(), "out.bin")
	start := time.Now()
	stderr, code := e.cpFail(t, ctx, "-j", "2", "--chunk-size", "1048576", "--resume-timeout", "10m", "gpu1:"+src, dst)
	took := time.Since(start)
	if code != 18 || !strings.Contains(stderr, "does not exist any more") || !strings.Contains(stderr, "run the same command again") {
		t.Fatalf("exit %d after %v:\n%s", code, took, stderr)
	}
	// Each session asks once; retried, they would ask every 2 s for 10 minutes.
	if n := e.l.Calls("ResumeSession"); n < 1 || n > 2 {
		t.Fatalf("ResumeSession called %d times for 2 sessions, want 1 or 2", n)
	}
	if took > 2*time.Minute {
		t.Fatalf("took %v: the definitive answer was retried", took)
	}
	if _, err := os.Stat(dst + ".devgate-part"); err != nil {
		t.Fatalf("partial file not kept: %v", err)
	}
}

// TestHomeMissing: HOME names a directory that does not exist: cp and setup
// refuse with a clear error (exit 23) and create nothing there.
func TestHomeMissing(t *testing.T) {
	e := newE2E(t, lab.Options{})
	ctx := ctxFor(t, time.Minute)
	src, _ := randFile(t, 1000)
	home := filepath.Join(t.TempDir(), "no-such-home")
	env := []string{"HOME=" + home, "XDG_CACHE_HOME=" + filepath.Join(home, ".cache")}
	for _, args := range [][]string{{"cp", src, "gpu1:" + filepath.Join(t.TempDir(), "x")}, {"setup", "--yes"}} {
		_, stderr, code := e.devgate(ctx, nil, env, args...)
		if code != 23 || !strings.Contains(stderr, home+" does not exist") || !strings.Contains(stderr, "set HOME") {
			t.Fatalf("%v with a missing HOME: exit %d\n%s", args[0], code, stderr)
		}
		if _, err := os.Stat(home); !os.IsNotExist(err) {
			t.Fatalf("%v created the missing HOME: %v", args[0], err)
		}
	}
}

// Two copies of one file to one destination at once: the second waits for
// the first (and says so) before it connects, then finds the file in place; the file is the
// source's, with its mtime. Before, both wrote the partial file, one failed
// with "destination … does not exist here", and the file often kept the
// time of the copy (h29's road test).
func TestCpSameDestinationTwiceAtOnce(t *testing.T) {
	e := slowLab(t, 4<<20)
	ctx := ctxFor(t, 2*time.Minute)
	src, _ := randFile(t, 16<<20)
	mtime := time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC)
	if err := os.Chtimes(src, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "out.bin")
	args := []string{"-j", "2", "--chunk-size", "1048576", "gpu1:" + src, dst}
	first, stderr1 := e.startCp(t, ctx, args...)
	waitJournal(t, dst+".devgate-journal", 1) // the first is writing
	in, _ := e.l.Instance("gpu1")
	_, stderr2, code := e.devgate(ctx, nil, nil, append([]string{"cp", "--user", in.User}, args...)...)
	if err := first.Wait(); err != nil {
		t.Fatalf("first cp: %v\n%s", err, stderr1)
	}
	if code != 0 {
		t.Fatalf("second cp: exit %d\n%s", code, stderr2)
	}
	if !strings.Contains(stderr2, "another devgate cp is copying to "+dst+"; waiting") {
		t.Fatalf("the second cp did not say it waits for the first:\n%s", stderr2)
	}
	if w, c := strings.Index(stderr2, "waiting for it"), strings.Index(stderr2, "Connected in"); c >= 0 && c < w {
		t.Fatalf("the second cp connected before it waited (its sessions idle while the first copies):\n%s", stderr2)
	}
	if !strings.Contains(stderr2, "already in place") {
		t.Fatalf("the second cp did not find the file in place after waiting:\n%s", stderr2)
	}
	sameFile(t, src, dst)
	if st, err := os.Stat(dst); err != nil || !st.ModTime().Equal(mtime) {
		t.Fatalf("destination mtime %v (%v), want the source's %v", st.ModTime(), err, mtime)
	}
}
