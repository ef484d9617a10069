package cli_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labs3"
)

// relayJournal reads the one relay journal in the cache ("" kinds: any).
func relayJournal(t *testing.T, dir string) (ranges int, ok bool) {
	js, _ := filepath.Glob(filepath.Join(dir, "relay-*.json"))
	if len(js) != 1 {
		return 0, false
	}
	b, err := os.ReadFile(js[0])
	if err != nil {
		return 0, false
	}
	var s struct {
		Ranges map[string]bool `json:"ranges"`
		Files  map[string]struct {
			Ranges map[string]bool `json:"ranges"`
		} `json:"files"`
	}
	if json.Unmarshal(b, &s) != nil {
		return 0, false
	}
	ranges = len(s.Ranges)
	for _, f := range s.Files {
		ranges += len(f.Ranges)
	}
	return ranges, true
}

// sameDir compares the regular files of two folders.
func sameDir(t *testing.T, a, b string) {
	t.Helper()
	n := 0
	filepath.Walk(a, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			rel, _ := filepath.Rel(a, p)
			sameFile(t, p, filepath.Join(b, rel))
			n++
		}
		return nil
	})
	if n == 0 {
		t.Fatal("empty folder")
	}
}

// waitFor polls cond for up to a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCpS3RelayResumeAfterKill: devgate cp --via s3 killed with SIGKILL in
// each leg of each direction (the lab's S3 paced at 8 MiB/s per request,
// 40 MiB in eight 5 MiB parts, -j 2, multipart objects kept on disk as for
// the 10 GiB benchmark). The same command again continues: after a kill in
// the first leg it sends fewer than all parts (ListParts tells which S3
// has), after a kill in the second it fetches fewer than all ranges and
// uploads nothing; a folder (-r, upload) killed part-way makes fewer S3
// requests in its rerun than a fresh copy; the result is byte-exact (sha256 verified), the journal,
// the object and the partial file are gone.
func TestCpS3RelayResumeAfterKill(t *testing.T) {
	s3, err := labs3.NewOnDisk(t.TempDir(), "relay")
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	s3.Throttle(8 << 20)
	e := newE2E(t, lab.Options{Services: []lab.Service{s3}})
	ctx := ctxFor(t, 3*time.Minute)
	const size, part = 40 << 20, 5 << 20
	src, _ := randFile(t, size)
	journals := filepath.Join(e.home, ".cache", "devgate", "cp")
	// The folder: ten small files (single objects) and the 40 MiB file.
	tree := filepath.Join(t.TempDir(), "tree")
	os.MkdirAll(tree, 0o755)
	for i := range 10 {
		os.WriteFile(filepath.Join(tree, fmt.Sprintf("small%02d", i)), bytes.Repeat([]byte{byte(i)}, 100<<10), 0o644)
	}
	if err := os.Link(src, filepath.Join(tree, "big.bin")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		up        bool
		secondLeg bool
		tree      bool
	}{{"download-first-leg", false, false, false}, {"download-second-leg", false, true, false}, {"upload-first-leg", true, false, false},
		{"upload-second-leg", true, true, false}, {"tree-upload", true, true, true}} {
		t.Run(c.name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "out.bin")
			args := []string{"--via", "s3", "--bucket", "relay", "-j", "2", "--chunk-size", "5242880"}
			from := src
			if c.tree {
				args = append(args, "-r")
				// Into an existing directory: the same command again goes
				// to the same place (into a new one, the rerun would go
				// into out/tree, as cp -r's).
				from, dst = tree, t.TempDir()
			}
			if c.up {
				args = append(args, from, "gpu1:"+dst)
			} else {
				args = append(args, "gpu1:"+from, dst)
			}
			data0 := s3.Completed("UploadPart") + s3.Completed("PutObject") + s3.Completed("GetObject")
			parts0, gets0 := s3.Completed("UploadPart"), s3.Completed("GetObject")
			cmd, stderr := e.startCp(t, ctx, args...)
			if c.secondLeg {
				waitFor(t, "a range journaled", func() bool { n, _ := relayJournal(t, journals); return n >= 1 })
			} else {
				waitFor(t, "a part in S3", func() bool { return s3.Completed("UploadPart")-parts0 >= 1 })
			}
			cmd.Process.Signal(os.Kill)
			if err := cmd.Wait(); err == nil {
				t.Fatalf("cp finished before the kill\n%s", stderr)
			} else if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != -1 {
				t.Fatalf("cp: %v, want killed", err)
			}
			ranges, ok := relayJournal(t, journals)
			if !ok {
				t.Fatal("no journal after the kill")
			}
			// The instance's curls of the killed copy go on until they are
			// done (the agent keeps the session open for a resume), and
			// requests already in the socket buffers arrive: wait until S3
			// has had no new request for 3 s (one takes under 1 s here).
			for last, since := s3.Requests(), time.Now(); time.Since(since) < 3*time.Second; time.Sleep(100 * time.Millisecond) {
				if n := s3.Requests(); n != last {
					last, since = n, time.Now()
				}
			}
			if c.up && c.secondLeg && !c.tree {
				waitQuiet(t, dst+".devgate-part")
			}
			if _, err := os.Stat(dst); !c.tree && !os.IsNotExist(err) {
				t.Fatalf("destination appeared before the copy finished: %v", err)
			}
			parts1, gets1, lists1 := s3.Completed("UploadPart"), s3.Completed("GetObject"), s3.Completed("ListParts")
			data1 := s3.Completed("UploadPart") + s3.Completed("PutObject") + s3.Completed("GetObject")
			s := e.cp(t, ctx, nil, args...)
			if c.tree {
				// A fresh copy makes 36 data requests (10 PUTs, 8 parts, 18 GETs).
				data := s3.Completed("UploadPart") + s3.Completed("PutObject") + s3.Completed("GetObject") - data1
				t.Logf("tree: %d data requests before the kill, %d in the rerun, %+v", data1-data0, data, s)
				if data >= 36 || s.Files != 11 || s.Resumed+int64(s.Skipped) == 0 {
					t.Fatalf("tree rerun made %d data requests, %+v: it did not continue", data, s)
				}
				sameDir(t, tree, filepath.Join(dst, "tree"))
				if js, _ := filepath.Glob(filepath.Join(journals, "relay-*.json")); len(js) != 0 {
					t.Fatalf("journal left: %v", js)
				}
				if keys, _ := s3.Objects("relay"); len(keys) != 0 {
					t.Fatalf("objects left: %v", keys)
				}
				return
			}
			sameFile(t, src, dst)
			sent, fetched := s3.Completed("UploadPart")-parts1, s3.Completed("GetObject")-gets1
			t.Logf("%s: before the kill %d parts sent, %d ranges fetched (%d journaled); rerun sent %d parts, fetched %d ranges, moved %d, resumed %d",
				c.name, parts1-parts0, gets1-gets0, ranges, sent, fetched, s.Moved, s.Resumed)
			if c.secondLeg {
				if sent != 0 || fetched >= size/part || s.Resumed < int64(ranges)*part {
					t.Fatalf("second-leg rerun sent %d parts, fetched %d ranges, resumed %d: it did not continue", sent, fetched, s.Resumed)
				}
			} else if sent >= size/part || s3.Completed("ListParts") == lists1 {
				t.Fatalf("first-leg rerun sent %d parts of %d (ListParts %d): it did not continue the upload", sent, size/part, s3.Completed("ListParts")-lists1)
			}
			if js, _ := filepath.Glob(filepath.Join(journals, "relay-*.json")); len(js) != 0 {
				t.Fatalf("journal left: %v", js)
			}
			if keys, _ := s3.Objects("relay"); len(keys) != 0 {
				t.Fatalf("objects left: %v", keys)
			}
			if _, err := os.Stat(dst + ".devgate-part"); !os.IsNotExist(err) {
				t.Fatalf("partial left: %v", err)
			}
		})
	}
}
