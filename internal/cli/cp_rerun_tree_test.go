package cli_test

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labs3"
	"github.com/devgate/devgate/internal/lab/labtest"
	"github.com/devgate/devgate/internal/transfer"
)

// TestCpRecursiveRerunAfterKill: `devgate cp -r SRC DST` into a DST that
// does not exist, killed (-9) once DST exists, then run again: the rerun
// goes on into DST itself — it does not nest into DST/<base> as cp -r does
// for a folder that was there before (that left the first run's partial
// tree at DST's top and copied everything again below it) — through the
// tunnel and the S3 relay, both ways; the unfinished-copy marker is gone at
// the end. Another copy into DST afterwards nests as usual.
func TestCpRecursiveRerunAfterKill(t *testing.T) {
	f := labtest.Fast()
	f.BandwidthCap = 4 << 20
	s3 := labs3.New("relay")
	s3.Throttle(4 << 20) // each S3 request's body at 4 MiB/s, as the sessions
	e := newE2E(t, lab.Options{Faults: f, Services: []lab.Service{s3}})
	src := filepath.Join(t.TempDir(), "tree")
	makeTree(t, src)
	big := make([]byte, 12<<20)
	r := rand.NewChaCha8([32]byte{3})
	r.Read(big)
	os.WriteFile(filepath.Join(src, "a", "big.bin"), big, 0o644)
	for _, c := range []struct {
		name string
		up   bool
		via  []string
	}{
		{"download tunnel", false, []string{"--via", "tunnel", "-j", "2", "--chunk-size", "1048576"}},
		{"upload tunnel", true, []string{"--via", "tunnel", "-j", "2", "--chunk-size", "1048576"}},
		{"download s3", false, []string{"--via", "s3", "--bucket", "relay", "-j", "2", "--chunk-size", "5242880"}},
		{"upload s3", true, []string{"--via", "s3", "--bucket", "relay", "-j", "2", "--chunk-size", "5242880"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := ctxFor(t, 2*time.Minute)
			dst := filepath.Join(t.TempDir(), "copy") // both sides are this machine
			args := append(append([]string{"-r"}, c.via...), "gpu1:"+src, dst)
			if c.up {
				args = append(append([]string{"-r"}, c.via...), src, "gpu1:"+dst)
			}
			cmd, stderr := e.startCp(t, ctx, args...)
			marker := filepath.Join(dst, transfer.UnfinishedMarker)
			deadline := time.Now().Add(30 * time.Second)
			for {
				if _, err := os.Stat(marker); err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no %s in %s\n%s", transfer.UnfinishedMarker, dst, stderr)
				}
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(1500 * time.Millisecond) // some of it on its way
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			if _, err := os.Stat(filepath.Join(dst, "a", "big.bin")); err == nil {
				t.Fatalf("the copy finished before the kill")
			}
			waitQuietDir(t, dst)
			e.cp(t, ctx, nil, args...)
			if _, err := os.Stat(filepath.Join(dst, "tree")); err == nil {
				t.Fatalf("the rerun nested into %s/tree", dst)
			}
			sameTree(t, src, dst)
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("the marker is left after the copy succeeded")
			}
			// Another copy into the folder, which now exists: cp -r's rule.
			e.cp(t, ctx, nil, args...)
			sameTree(t, src, filepath.Join(dst, "tree"))
		})
	}
}

// waitQuietDir waits until nothing below dir has changed for a second (a
// killed copy's instance-side writers may still be finishing).
func waitQuietDir(t *testing.T, dir string) {
	t.Helper()
	last, since := "", time.Now()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var sig string
		filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if err == nil {
				sig += p + fi.ModTime().String() + string(rune(fi.Size()%1000))
			}
			return nil
		})
		if sig != last {
			last, since = sig, time.Now()
		} else if time.Since(since) > time.Second {
			return
		}
	}
}
