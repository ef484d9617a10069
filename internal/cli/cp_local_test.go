package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/lab"
)

// TestCpLocalChecksBeforeAWS: what cp can find wrong on this machine (a
// missing source, a directory without -r, --via s3 without a bucket, a
// destination directory that does not exist) fails before the first AWS call:
// the lab answers none, and the stopped instance stays stopped.
func TestCpLocalChecksBeforeAWS(t *testing.T) {
	e := newE2E(t, lab.Options{Instances: []lab.InstanceSpec{{Name: "gpu1", State: "stopped"}}})
	ctx := ctxFor(t, time.Minute)
	dir := t.TempDir()
	file := filepath.Join(dir, "f.bin")
	if err := os.WriteFile(file, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		env  []string
		code int
		want string
	}{
		{"local source missing", []string{filepath.Join(dir, "typo.bin"), "gpu1:/tmp/x"}, nil, 22, "does not exist here"},
		{"directory without -r", []string{dir, "gpu1:/tmp/x"}, nil, 2, "add -r"},
		{"--via s3 without a bucket", []string{"--via", "s3", file, "gpu1:/tmp/x"}, []string{"DEVGATE_BUCKET="}, 2, "--via s3 needs a bucket"},
		{"--via s3 download without a bucket", []string{"--via", "s3", "gpu1:/tmp/x", dir}, []string{"DEVGATE_BUCKET="}, 2, "--via s3 needs a bucket"},
		{"destination directory missing", []string{"gpu1:/tmp/x", filepath.Join(dir, "no", "such", "x")}, nil, 22, "does not exist here"},
		{"destination directory with / missing", []string{"gpu1:/tmp/x", filepath.Join(dir, "nodir") + "/"}, nil, 22, "does not exist here"},
		{"bad -j", []string{"-j", "0", file, "gpu1:/tmp/x"}, nil, 2, "-j 0 is out of range"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := e.l.CallsTotal()
			stdout, stderr, code := e.devgate(ctx, nil, c.env, append([]string{"cp"}, c.args...)...)
			if code != c.code || !strings.Contains(stderr, c.want) || !strings.Contains(stderr, "devgate: hint: ") || stdout != "" {
				t.Fatalf("exit %d, want %d with %q and a hint:\nstdout %q\nstderr %s", code, c.code, c.want, stdout, stderr)
			}
			if n := e.l.CallsTotal() - before; n != 0 {
				t.Fatalf("%d AWS call(s) made before the local check failed", n)
			}
		})
	}
	if in, _ := e.l.Instance("gpu1"); in.State != "stopped" {
		t.Fatalf("gpu1 is %s, want stopped", in.State)
	}
	// A command whose local side is right does reach AWS (and the counter counts it).
	before := e.l.CallsTotal()
	if _, stderr, code := e.devgate(ctx, nil, nil, "cp", file, "nosuch:/tmp/x"); code != 12 || e.l.CallsTotal() == before {
		t.Fatalf("cp to an unknown target: exit %d, %d calls\n%s", code, e.l.CallsTotal()-before, stderr)
	}
}
