package s3relay_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/s3relay"
	"github.com/devgate/devgate/internal/transfer"
)

// smallTree writes 20 files of 10 KiB and big.bin (6 MiB: six 1 MiB parts)
// under root and returns their total size.
func smallTree(t *testing.T, root string) int64 {
	t.Helper()
	os.MkdirAll(filepath.Join(root, "sub"), 0o755)
	for i := range 20 {
		os.WriteFile(filepath.Join(root, "sub", fmt.Sprintf("f%02d", i)), []byte(strings.Repeat(fmt.Sprint(i), 10<<10)[:10<<10]), 0o644)
	}
	b, _ := os.ReadFile(randFile(t, 6<<20))
	os.WriteFile(filepath.Join(root, "big.bin"), b, 0o644)
	return 20*10<<10 + 6<<20
}

func sameDir(t *testing.T, a, b string) {
	t.Helper()
	filepath.Walk(a, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			rel, _ := filepath.Rel(a, p)
			sameFile(t, p, filepath.Join(b, rel))
		}
		return nil
	})
}

// onFile is a Progress that calls fn (once, or on every call with always)
// when bytes of a file whose name ends in suffix are counted.
type onFile struct {
	suffix string
	always bool
	fired  atomic.Bool
	fn     func()
}

func (p *onFile) Total(int, int64, int64)        {}
func (p *onFile) FileStart(string, int64, int64) {}
func (p *onFile) FileDone(string)                {}
func (p *onFile) Add(name string, n int64) {
	if n > 0 && strings.HasSuffix(name, p.suffix) && (p.always || !p.fired.Swap(true)) {
		p.fn()
	}
}

func appendTo(t *testing.T, p string) func() {
	return func() {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Error(err)
			return
		}
		f.Write([]byte("written during the copy\n"))
		f.Close()
		mt := time.Now().Add(time.Second)
		os.Chtimes(p, mt, mt)
	}
}

// TestTreeSourceChanges: a file of the folder that changes while its parts
// are on their way (appended to after its first part) no longer matches its
// object's sha256: it is copied again, from its new size, and the result is
// the new content, both ways; one that keeps changing ends the copy with a
// checksum error (exit 21) and no file in its place.
func TestTreeSourceChanges(t *testing.T) {
	f := newFixture(t)
	for _, dir := range []transfer.Direction{transfer.Download, transfer.Upload} {
		t.Run(fmt.Sprint(map[transfer.Direction]string{transfer.Download: "download", transfer.Upload: "upload"}[dir]), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			src := filepath.Join(t.TempDir(), "tree")
			smallTree(t, src)
			dst := t.TempDir()
			o := s3relay.Options{Bucket: "relay", PartSize: 1 << 20, Parallel: 2, JournalDir: t.TempDir(),
				Progress: &onFile{suffix: "big.bin", fn: appendTo(t, filepath.Join(src, "big.bin"))}}
			st, err := s3relay.CopyTree(ctx, f.l.AWSConfig(), f.c, dir, src, dst, false, o)
			if err != nil {
				t.Fatal(err)
			}
			sameDir(t, src, filepath.Join(dst, "tree"))
			if st.Restarts != 1 {
				t.Fatalf("stats %+v, want one restart", st)
			}
			if b, _ := os.ReadFile(filepath.Join(dst, "tree", "big.bin")); !strings.HasSuffix(string(b), "written during the copy\n") {
				t.Fatal("the copy does not have the new content")
			}

			dst2 := t.TempDir()
			o.Progress = &onFile{suffix: "big.bin", always: true, fn: appendTo(t, filepath.Join(src, "big.bin"))}
			_, err = s3relay.CopyTree(ctx, f.l.AWSConfig(), f.c, dir, src, dst2, false, o)
			var xe *exitcode.Error
			if !errors.As(err, &xe) || xe.Class != exitcode.Checksum || !strings.Contains(err.Error(), "kept changing") {
				t.Fatalf("a file that keeps changing: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dst2, "tree", "big.bin")); !os.IsNotExist(err) {
				t.Fatalf("a changing file was put in place: %v", err)
			}
		})
	}
}

// TestTreeResume: a folder copy stopped part-way (cancelled from the
// progress at 3/4 of the bytes: every first leg, S3 side, and half the
// second legs are done), both ways: the same copy again
// skips the files already in place and the parts already in S3 or in a
// partial file, makes fewer S3 requests than
// a fresh copy, and leaves the same tree, no journal and no
// object.
func TestTreeResume(t *testing.T) {
	f := newFixture(t)
	for _, dir := range []transfer.Direction{transfer.Download, transfer.Upload} {
		t.Run(fmt.Sprint(map[transfer.Direction]string{transfer.Download: "download", transfer.Upload: "upload"}[dir]), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			src := filepath.Join(t.TempDir(), "tree")
			size := smallTree(t, src)
			journals := t.TempDir()
			o := s3relay.Options{Bucket: "relay", PartSize: 1 << 20, Parallel: 2, JournalDir: journals}

			before := f.s3.Requests()
			if _, err := s3relay.CopyTree(ctx, f.l.AWSConfig(), f.c, dir, src, t.TempDir(), false, o); err != nil {
				t.Fatal(err)
			}
			fresh := f.s3.Requests() - before

			dst := t.TempDir()
			stopCtx, stop := context.WithCancel(ctx)
			o.Progress = &stopAfter{n: size * 3 / 4, cancel: stop}
			if _, err := s3relay.CopyTree(stopCtx, f.l.AWSConfig(), f.c, dir, src, dst, false, o); err == nil {
				t.Fatal("the stopped copy succeeded")
			}
			stop()
			if js, _ := filepath.Glob(filepath.Join(journals, "relay-tree-*.json")); len(js) != 1 {
				t.Fatalf("journals after the stop: %v", js)
			}
			o.Progress = nil
			before = f.s3.Requests()
			st, err := s3relay.CopyTree(ctx, f.l.AWSConfig(), f.c, dir, src, dst, false, o)
			if err != nil {
				t.Fatal(err)
			}
			reqs := f.s3.Requests() - before
			t.Logf("fresh copy: %d S3 requests; rerun: %d, %+v", fresh, reqs, st)
			sameDir(t, src, filepath.Join(dst, "tree"))
			if st.Skipped == 0 && st.Resumed == 0 || reqs >= fresh {
				t.Fatalf("rerun %+v with %d S3 requests (fresh %d): nothing was resumed", st, reqs, fresh)
			}
			if js, _ := filepath.Glob(filepath.Join(journals, "relay-*.json")); len(js) != 0 {
				t.Fatalf("journal left after success: %v", js)
			}
			if keys, _ := f.s3.Objects("relay"); len(keys) != 0 {
				t.Fatalf("objects left: %v", keys)
			}
		})
	}
}
