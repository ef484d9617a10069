package cli_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/lab"
)

// TestE2EWrongUser: a cp (and a bench) as a user the instance's sshd refuses
// says which user the key was pushed for and was refused, and names the
// user the instance is meant for (its image's default, or its devgate:user
// tag), not only x/crypto/ssh's "unable to authenticate".
func TestE2EWrongUser(t *testing.T) {
	e := newE2E(t, lab.Options{Instances: []lab.InstanceSpec{
		{Name: "gpu1", Image: ubuntuAMI},                                   // logs in as the lab's user; the image says ubuntu
		{Name: "gpu2", Tags: map[string]string{"devgate:user": "labuser"}}, // the tag wins over the image
	}})
	in, _ := e.l.Instance("gpu1")
	ctx := ctxFor(t, 2*time.Minute)
	dst := filepath.Join(t.TempDir(), "x")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"cp", "--user", "nobody", "gpu1:/etc/hostname", dst},
			[]string{"devgate: error: ssh login to " + in.ID + ": the key was pushed for nobody; the instance refused nobody",
				"devgate: hint: check the user name (image default: ubuntu, from image: Ubuntu): --user ubuntu, or ubuntu@<target>"}},
		{[]string{"cp", "nobody@gpu2:/etc/hostname", dst},
			[]string{"the key was pushed for nobody; the instance refused nobody",
				"image default: labuser, from tag devgate:user"}},
	} {
		out, stderr, code := e.devgate(ctx, nil, nil, tc.args...)
		bad := code != 17 || out != ""
		for _, w := range tc.want {
			bad = bad || !strings.Contains(stderr, w)
		}
		if bad {
			t.Errorf("%v: exit %d\nstdout %s\nstderr %s", tc.args, code, out, stderr)
		}
	}
	// bench reports the path as not usable, with the same words and hint.
	out, stderr, code := e.devgate(ctx, nil, nil, "bench", "gpu1", "--user", "nobody", "--path", "ssm", "--runs", "1", "--size", "64KiB")
	if code != 0 || !strings.Contains(out, "not available: ssh login to "+in.ID+": the key was pushed for nobody; the instance refused nobody") ||
		!strings.Contains(out, "hint: check the user name (image default: ubuntu, from image: Ubuntu)") {
		t.Errorf("bench as nobody: exit %d\nstdout %s\nstderr %s", code, out, stderr)
	}
}
