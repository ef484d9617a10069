package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/lab"
)

// mfaE2E: the user's profile assumes a role behind MFA from a source
// profile holding the lab's keys; nothing in the environment.
func mfaE2E(t *testing.T) (*e2e, []string) {
	e := newE2E(t, lab.Options{})
	key, secret := e.l.Credentials()
	cfg := filepath.Join(e.home, ".aws", "config")
	os.MkdirAll(filepath.Dir(cfg), 0o700)
	os.WriteFile(cfg, []byte(`[profile base]
aws_access_key_id = `+key+`
aws_secret_access_key = `+secret+`

[profile dev-mfa]
role_arn = arn:aws:iam::123456789012:role/dev-mfa
source_profile = base
mfa_serial = `+e.l.MFASerial()+`
region = us-east-1
`), 0o600)
	e.environ = envWithout(e.environ, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
	e.environ = append(e.environ, "AWS_CONFIG_FILE="+cfg, "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(e.home, ".aws", "credentials"), "AWS_PROFILE=dev-mfa")
	return e, e.environ
}

// onTerminal runs command (a shell command line) under a real pseudo-terminal
// (script(1)), so that it and its children have a controlling terminal, and
// types line once prompt appears. It returns the terminal's output and the
// command's exit code.
func onTerminal(t *testing.T, ctx context.Context, env []string, command, prompt, line string) (string, int) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "script", "-qfec", command, "/dev/null")
	cmd.Env = env
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var all bytes.Buffer
	r := bufio.NewReader(out)
	typed := false
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		all.Write(buf[:n])
		if !typed && strings.Contains(all.String(), prompt) {
			io.WriteString(in, line+"\n")
			typed = true
		}
		if err != nil {
			break
		}
	}
	in.Close()
	err := cmd.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if !typed {
		t.Fatalf("%s: no %q prompt on the terminal:\n%s", command, prompt, all.String())
	}
	return all.String(), code
}

// noTTY runs devgate connect in a new session: no controlling terminal, as
// VSCode's ssh runs its ProxyCommand.
func noTTY(t *testing.T, ctx context.Context, env []string) (string, int) {
	cmd := exec.CommandContext(ctx, "devgate", "connect", "gpu1", "22")
	cmd.Env = env
	cmd.Stdin = strings.NewReader("")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return stderr.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stderr.String(), 0
}

// TestE2EMFA: ssh from a terminal through a role behind MFA asks the code on
// the terminal (from inside the ProxyCommand), then a connect with no
// terminal reuses the cached role credentials without a prompt; a wrong code
// gets STS's AccessDenied (exit 10); no terminal and no cache exits 10 with
// the devgate login hint; devgate login primes the cache.
func TestE2EMFA(t *testing.T) {
	e, env := mfaE2E(t)
	ctx := ctxFor(t, 3*time.Minute)
	user := e.user(t)
	cache := filepath.Join(e.home, ".aws", "cli", "cache")

	// No terminal, no cache.
	stderr, code := noTTY(t, ctx, env)
	if code != 10 || !strings.Contains(stderr, "needs an MFA code") || !strings.Contains(stderr, "hint: run devgate login --profile dev-mfa in a terminal") {
		t.Fatalf("no terminal, no cache: exit %d\n%s", code, stderr)
	}

	// A wrong code.
	out, code := onTerminal(t, ctx, env, "devgate connect gpu1 22 </dev/null", "MFA code for", "000000")
	if code != 10 || !strings.Contains(out, "AccessDenied") {
		t.Fatalf("wrong code: exit %d\n%s", code, out)
	}

	// ssh from a terminal: the ProxyCommand asks on /dev/tty.
	first := lab.TOTP(lab.MFASecret, time.Now())
	out, code = onTerminal(t, ctx, env, "ssh -n -F "+e.config+" -o BatchMode=yes -l "+user+" gpu1 echo mfa-ok",
		"MFA code for "+e.l.MFASerial(), first)
	if code != 0 || !strings.Contains(out, "mfa-ok") {
		t.Fatalf("ssh on a terminal: exit %d\n%s", code, out)
	}
	files, _ := filepath.Glob(filepath.Join(cache, "*.json"))
	if len(files) != 1 {
		t.Fatalf("role cache files %v", files)
	}
	if st, _ := os.Stat(files[0]); st.Mode().Perm() != 0o600 {
		t.Fatalf("cache mode %v", st.Mode().Perm())
	}
	if st, _ := os.Stat(cache); st.Mode().Perm() != 0o700 {
		t.Fatalf("cache dir mode %v", st.Mode().Perm())
	}

	// No terminal now: the cache serves, STS is not asked again: devgate's
	// connect, and the AWS CLI, which finds the same file under the same key.
	calls := e.l.Calls("AssumeRole")
	aws := exec.CommandContext(ctx, "aws", "sts", "get-caller-identity", "--output", "json")
	aws.Env = env
	aws.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if b, err := aws.CombinedOutput(); err != nil || !strings.Contains(string(b), "assumed-role/dev-mfa") || e.l.Calls("AssumeRole") != calls {
		c, _ := os.ReadFile(files[0])
		t.Fatalf("aws CLI with devgate's role cache: %v (AssumeRole %d → %d)\n%s\n%s: %s", err, calls, e.l.Calls("AssumeRole"), b, files[0], c)
	}
	var sshOut bytes.Buffer
	ssh := exec.CommandContext(ctx, "ssh", "-F", e.config, "-o", "BatchMode=yes", "-l", user, "gpu1", "echo", "cached")
	ssh.Env, ssh.Stdout = env, &sshOut
	var sshErr bytes.Buffer
	ssh.Stderr = &sshErr
	ssh.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := ssh.Run(); err != nil || sshOut.String() != "cached\n" || e.l.Calls("AssumeRole") != calls {
		t.Fatalf("ssh without a terminal: %v %q (AssumeRole %d → %d)\n%s", err, sshOut.String(), calls, e.l.Calls("AssumeRole"), sshErr.String())
	}

	// devgate login asks afresh and primes the cache.
	os.RemoveAll(cache)
	// A code not used yet (the lab, like IAM, accepts each code once and one step of skew).
	second := lab.TOTP(lab.MFASecret, time.Now().Add(30*time.Second))
	if second == first {
		second = lab.TOTP(lab.MFASecret, time.Now())
	}
	out, code = onTerminal(t, ctx, env, "devgate login --profile dev-mfa", "MFA code for", second)
	if code != 0 || !strings.Contains(out, "signed in: profile dev-mfa") {
		t.Fatalf("devgate login: exit %d\n%s", code, out)
	}
	if stderr, code := noTTY(t, ctx, env); code != 0 || !strings.Contains(stderr, "Connected in") {
		t.Fatalf("connect after login, no terminal: exit %d\n%s", code, stderr)
	}
}
