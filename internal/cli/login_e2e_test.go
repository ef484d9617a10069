package cli_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/lab"
)

// ssoE2E is a lab whose users sign in through IAM Identity Center: no
// access keys in the environment, a shared config with an sso_session
// profile and a legacy one.
func ssoE2E(t *testing.T) *e2e {
	e := newE2E(t, lab.Options{})
	cfg := filepath.Join(e.home, ".aws", "config")
	os.MkdirAll(filepath.Dir(cfg), 0o700)
	os.WriteFile(cfg, []byte(`[profile dev-sso]
sso_session = corp
sso_account_id = 123456789012
sso_role_name = Developer
region = us-east-1

[sso-session corp]
sso_start_url = https://corp.awsapps.com/start
sso_region = us-east-1
sso_registration_scopes = sso:account:access

[profile legacy-sso]
sso_start_url = https://legacy.awsapps.com/start
sso_region = us-east-1
sso_account_id = 123456789012
sso_role_name = Developer
region = us-east-1
`), 0o600)
	e.environ = envWithout(e.environ, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
	e.environ = append(e.environ, "AWS_CONFIG_FILE="+cfg, "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(e.home, ".aws", "credentials"))
	return e
}

var codeRe = regexp.MustCompile(`confirm the code ([0-9A-F]{4}-[0-9A-F]{4})`)

// login runs devgate login --profile p, approves the code it shows (as the
// user would in the browser), and waits for it to succeed.
func (e *e2e) login(t *testing.T, ctx context.Context, profile string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, "devgate", "login", "--profile", profile)
	cmd.Env = e.environ
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	sc := bufio.NewScanner(stderr)
	approved := false
	for sc.Scan() {
		all.WriteString(sc.Text() + "\n")
		if m := codeRe.FindStringSubmatch(sc.Text()); m != nil && !approved {
			time.Sleep(1500 * time.Millisecond) // let devgate poll once unapproved (authorization_pending)
			if err := e.l.ApproveDevice(m[1]); err != nil {
				t.Fatal(err)
			}
			approved = true
		}
	}
	if err := cmd.Wait(); err != nil || !approved || !strings.Contains(all.String(), "signed in: profile "+profile) {
		t.Fatalf("devgate login --profile %s: %v\n%s", profile, err, all.String())
	}
	return all.String()
}

// TestE2ELoginSSO: with no credentials but an IAM Identity Center profile,
// connect exits 10 with a hint to run devgate login; devgate login runs the
// device flow against the lab (the real SDK's ssooidc) and writes the token
// where the SDK and the AWS CLI look; ssh then works. When the session ends
// on the Identity Center side, connect exits 10 with the same hint, and a new
// login makes ssh work again. Both the sso_session and legacy profile forms.
func TestE2ELoginSSO(t *testing.T) {
	e := ssoE2E(t)
	ctx := ctxFor(t, 3*time.Minute)
	for _, profile := range []string{"dev-sso", "legacy-sso"} {
		env := append(append([]string(nil), e.environ...), "AWS_PROFILE="+profile)
		saved := e.environ
		e.environ = env

		stderr, code := runEnv(t, env, "connect", "gpu1", "22")
		if code != 10 || !strings.Contains(stderr, "hint: run devgate login --profile "+profile) {
			t.Fatalf("%s before login: exit %d\n%s", profile, code, stderr)
		}
		before := e.l.Calls("CreateToken")
		e.login(t, ctx, profile)
		if e.l.Calls("CreateToken") < 2+before {
			t.Fatalf("%s: CreateToken called %d times: the pending answer was not polled through", profile, e.l.Calls("CreateToken")-before)
		}
		files, _ := filepath.Glob(filepath.Join(e.home, ".aws", "sso", "cache", "*.json"))
		for _, f := range files {
			if st, _ := os.Stat(f); st.Mode().Perm() != 0o600 {
				t.Fatalf("%s mode %v", f, st.Mode().Perm())
			}
		}
		var out strings.Builder
		if se, err := e.ssh(ctx, nil, &out, "gpu1", "echo", "signed in"); err != nil || out.String() != "signed in\n" {
			t.Fatalf("%s: ssh after login: %v\n%s", profile, err, se)
		}
		// The AWS CLI reads the same cache.
		aws := exec.CommandContext(ctx, "aws", "sts", "get-caller-identity", "--output", "json")
		aws.Env = env
		if b, err := aws.CombinedOutput(); err != nil || !strings.Contains(string(b), `"Account"`) {
			t.Fatalf("%s: aws CLI with devgate's token: %v\n%s", profile, err, b)
		}

		e.l.ExpireSSOTokens()
		stderr, code = runEnv(t, env, "connect", "gpu1", "22")
		if code != 10 || !strings.Contains(stderr, "has expired or is missing") || !strings.Contains(stderr, "hint: run devgate login --profile "+profile) {
			t.Fatalf("%s with the session ended: exit %d\n%s", profile, code, stderr)
		}
		e.login(t, ctx, profile)
		out.Reset()
		if se, err := e.ssh(ctx, nil, &out, "gpu1", "echo", "again"); err != nil || out.String() != "again\n" {
			t.Fatalf("%s: ssh after the second login: %v\n%s", profile, err, se)
		}
		e.environ = saved
	}
	if files, _ := filepath.Glob(filepath.Join(e.home, ".aws", "sso", "cache", "*.json")); len(files) != 2 {
		t.Fatalf("cache files %v: want one per sso_session/start URL", files)
	}
}

// devgate login with nothing to sign in says why: credentials from the
// environment and no profile named, or no profile at all; a named profile
// that does not exist is named.
func TestE2ELoginWithoutProfile(t *testing.T) {
	e := newE2E(t, lab.Options{})
	base := append(envWithout(e.environ, "AWS_PROFILE"), "AWS_CONFIG_FILE="+e.home+"/none", "AWS_SHARED_CREDENTIALS_FILE="+e.home+"/none")
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"environment credentials", base, nil, "nothing to sign in: the credentials come from the environment"},
		{"no profile at all", envWithout(base, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), nil, "no profile named and no default profile"},
		{"named profile missing", base, []string{"--profile", "nope"}, "there is no profile nope"},
	} {
		stderr, code := runEnv(t, tc.env, append([]string{"login"}, tc.args...)...)
		if code != 10 || !strings.Contains(stderr, tc.want) || !strings.Contains(stderr, "hint:") || strings.Contains(stderr, "cannot read profile") ||
			strings.Contains(stderr, "failed to get shared config profile") {
			t.Fatalf("%s: exit %d\n%s", tc.name, code, stderr)
		}
	}
}
