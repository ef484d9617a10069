package cli_test

import (
	"net/http"
	"net/http/httptest"
	"os/exec"
	"os/user"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/cli"
	"github.com/devgate/devgate/internal/lab"
)

// envWithout is environ minus the variables named.
func envWithout(environ []string, names ...string) []string {
	var out []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			drop = drop || k == n
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return out
}

func runEnv(t *testing.T, env []string, args ...string) (stderr string, code int) {
	t.Helper()
	ctx := ctxFor(t, 2*time.Minute)
	cmd := exec.CommandContext(ctx, "devgate", args...)
	cmd.Env = env
	var er strings.Builder
	cmd.Stderr = &er
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return er.String(), code
}

// No credentials anywhere: the SDK falls through to the instance role, whose
// metadata service (here a stand-in answering 404 like a host without IMDSv2)
// makes the SDK log "falling back to IMDSv1". devgate says no credentials were
// found (not "rejected"), exits 10, and no SDK line reaches the terminal.
func TestE2ENoCredentialsFound(t *testing.T) {
	e := newE2E(t, lab.Options{})
	var imdsCalls atomic.Int32
	imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		imdsCalls.Add(1)
		http.NotFound(w, r)
	}))
	defer imds.Close()
	env := envWithout(e.environ, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_EC2_METADATA_DISABLED")
	env = append(env, "AWS_EC2_METADATA_SERVICE_ENDPOINT="+imds.URL, "AWS_CONFIG_FILE="+e.home+"/none", "AWS_SHARED_CREDENTIALS_FILE="+e.home+"/none")
	for _, args := range [][]string{{"ls"}, {"connect", e.inst(t, "gpu1"), "22"}} {
		stderr, code := runEnv(t, env, args...)
		if code != 10 || !strings.Contains(stderr, "no AWS credentials found") || strings.Contains(stderr, "rejected") ||
			!strings.Contains(stderr, "hint: name a profile") {
			t.Fatalf("%v: exit %d\n%s", args, code, stderr)
		}
		if strings.Contains(stderr, "WARN") || strings.Contains(stderr, "IMDSv1") || strings.Contains(stderr, "SDK") {
			t.Fatalf("%v: the SDK's log reached the terminal:\n%s", args, stderr)
		}
	}
	if imdsCalls.Load() == 0 {
		t.Fatal("the metadata stand-in was never asked: the test did not exercise the fallback")
	}
	// With --verbose, connect shows what the SDK said.
	stderr, code := runEnv(t, env, "connect", "--verbose", e.inst(t, "gpu1"), "22")
	if code != 10 || !strings.Contains(stderr, "falling back to IMDSv1") {
		t.Fatalf("--verbose: exit %d, no SDK log:\n%s", code, stderr)
	}
}

// Credentials the lab does not accept: each service's own error code
// (EC2 AuthFailure, SSM UnrecognizedClientException / InvalidSignatureException)
// exits 10 with the "rejected" message and a hint.
func TestE2ECredentialsRejected(t *testing.T) {
	e := newE2E(t, lab.Options{})
	id := e.inst(t, "gpu1")
	for _, tc := range []struct {
		name string
		env  []string
		args []string
	}{
		{"ec2 unknown key", []string{"AWS_ACCESS_KEY_ID=AKIANOTKNOWN00000000"}, []string{"ls"}},
		{"ssm unknown key", []string{"AWS_ACCESS_KEY_ID=AKIANOTKNOWN00000000"}, []string{"connect", id, "22"}},
		{"ssm wrong secret", []string{"AWS_SECRET_ACCESS_KEY=wrong-secret"}, []string{"connect", id, "22"}},
	} {
		env := append(append([]string(nil), e.environ...), tc.env...)
		stderr, code := runEnv(t, env, tc.args...)
		if code != 10 || !strings.Contains(stderr, "AWS rejected the credentials") || !strings.Contains(stderr, "hint:") {
			t.Fatalf("%s: exit %d\n%s", tc.name, code, stderr)
		}
		// The lab's credentials are in the environment: the hint says so
		// (no profile to sign in again, no "<profile>" placeholder).
		if !strings.Contains(stderr, "they come from the environment") || strings.Contains(stderr, "<profile>") {
			t.Fatalf("%s: the hint does not name the credentials' origin:\n%s", tc.name, stderr)
		}
	}
}

var sessionRe = regexp.MustCompile(`\(session (devgate-lab-[0-9a-f]+)\)`)

// Every call carries the SDK application id devgate/<version> in its
// User-Agent, and StartSession a Reason naming devgate and the local user
// (or --reason), as the lab recorded them.
func TestE2EAuditUserAgentAndReason(t *testing.T) {
	e := newE2E(t, lab.Options{})
	ctx := ctxFor(t, time.Minute)
	var out strings.Builder
	stderr, err := e.ssh(ctx, nil, &out, "gpu1", "true")
	if err != nil {
		t.Fatalf("ssh: %v\n%s", err, stderr)
	}
	m := sessionRe.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no session id in:\n%s", stderr)
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := e.l.SessionReason(m[1]), "devgate connect by "+me.Username; got != want {
		t.Fatalf("Reason %q, want %q", got, want)
	}
	for _, op := range []string{"StartSession", "SendSSHPublicKey"} {
		// The SDK writes the application id "devgate/<version>" as app/devgate-<version>
		// ('/' is not a User-Agent token character).
		if ua := e.l.UserAgent(op); !strings.Contains(ua, " app/devgate-"+cli.Version) {
			t.Fatalf("%s User-Agent %q lacks app/devgate-%s", op, ua, cli.Version)
		}
	}
	_, stderr, code := e.devgate(ctx, strings.NewReader(""), nil, "connect", "--reason", "ticket OPS-42: debug the GPU driver", "gpu1", "22")
	m = sessionRe.FindStringSubmatch(stderr)
	if code != 0 || m == nil {
		t.Fatalf("connect --reason: exit %d\n%s", code, stderr)
	}
	if got := e.l.SessionReason(m[1]); got != "ticket OPS-42: debug the GPU driver" {
		t.Fatalf("--reason: lab saw %q", got)
	}
	if _, _, code := e.devgate(ctx, nil, nil, "ls"); code != 0 || !strings.Contains(e.l.UserAgent("DescribeInstances"), " app/devgate-") {
		t.Fatalf("ls: exit %d, DescribeInstances User-Agent %q", code, e.l.UserAgent("DescribeInstances"))
	}
}
