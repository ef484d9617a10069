package labcli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labtest"
)

// TestUpEnvDown runs `devgate-lab up` in-process, drives it with AWS CLI v1
// (a client nobody here wrote) using only the variables from D/env, then
// stops it with `down` and checks that no sshd is left.
func TestUpEnvDown(t *testing.T) {
	awsBin, err := exec.LookPath("aws")
	if err != nil {
		t.Fatalf("aws CLI not on PATH (.ci/run installs it): %v", err)
	}
	dir := t.TempDir()
	var upOut, upErr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Main(context.Background(), []string{"up", "--dir", dir, "--instance", "gpu1", "--instance", "gpu2:stopped",
			"--boot-delay", "200ms", "--agent-delay", "100ms", "--pacing=false"}, &upOut, &upErr, nil)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, PidFile)); err == nil {
			break
		}
		select {
		case code := <-done:
			t.Fatalf("up exited %d: %s %s", code, upOut.String(), upErr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("up did not write its pid file")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, f := range []string{EnvFile, SSHConfigFile, InstancesFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v mode %v, want 0600", f, err, st.Mode().Perm())
		}
	}
	var envOut, envErr bytes.Buffer
	if code := Main(context.Background(), []string{"env", "--dir", dir}, &envOut, &envErr, nil); code != 0 {
		t.Fatalf("env: %d %s", code, envErr.String())
	}
	env := []string{"HOME=" + t.TempDir(), "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "PATH=" + os.Getenv("PATH")}
	for _, line := range strings.Split(envOut.String(), "\n") {
		if kv, ok := strings.CutPrefix(line, "export "); ok {
			k, v, _ := strings.Cut(kv, "=")
			env = append(env, k+"="+strings.Trim(v, "'"))
		}
	}
	aws := func(extra []string, args ...string) (string, error) {
		cmd := exec.Command(awsBin, append(args, "--output", "json")...)
		cmd.Env = append(append([]string(nil), env...), extra...)
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	if out, err := aws(nil, "sts", "get-caller-identity"); err != nil || !strings.Contains(out, `"Account"`) {
		t.Fatalf("sts get-caller-identity: %v\n%s", err, out)
	}
	out, err := aws(nil, "ec2", "describe-instances")
	if err != nil {
		t.Fatalf("ec2 describe-instances: %v\n%s", err, out)
	}
	var di struct {
		Reservations []struct {
			Instances []struct {
				InstanceId string
				State      struct{ Name string }
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &di); err != nil {
		t.Fatal(err)
	}
	stopped := ""
	for _, r := range di.Reservations {
		for _, in := range r.Instances {
			if in.State.Name == "stopped" {
				stopped = in.InstanceId
			}
		}
	}
	if stopped == "" {
		t.Fatalf("no stopped instance in %s", out)
	}
	if out, err := aws(nil, "ec2", "start-instances", "--instance-ids", stopped); err != nil || !strings.Contains(out, `"pending"`) {
		t.Fatalf("ec2 start-instances: %v\n%s", err, out)
	}
	if out, err := aws(nil, "ssm", "describe-instance-information"); err != nil || !strings.Contains(out, `"Online"`) {
		t.Fatalf("ssm describe-instance-information: %v\n%s", err, out)
	}
	if out, err := aws([]string{"AWS_SECRET_ACCESS_KEY=wrong"}, "sts", "get-caller-identity"); err == nil || !strings.Contains(out, "SignatureDoesNotMatch") {
		t.Fatalf("wrong secret: %v\n%s", err, out)
	}

	pids := sshdPids(t, dir)
	var downOut bytes.Buffer
	if code := Main(context.Background(), []string{"down", "--dir", dir}, &downOut, &downOut, nil); code != 0 {
		t.Fatalf("down: %s", downOut.String())
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("up exited %d: %s", code, upErr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("up still running after down")
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("sshd %d still running after down", pid)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, PidFile)); !os.IsNotExist(err) {
		t.Errorf("pid file left behind: %v", err)
	}
}

func sshdPids(t *testing.T, dir string) []int {
	files, _ := filepath.Glob(filepath.Join(dir, "instances", "*", "sshd.pid"))
	var pids []int
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			pids = append(pids, pid)
		}
	}
	if len(pids) != 2 {
		t.Fatalf("%d sshd pid files, want 2", len(pids))
	}
	return pids
}

// TestSSHConfigNameTags: Name tags with a newline (a directive of its own),
// spaces and quotes do not reach D/ssh_config as written: each instance
// gets one Host line whose patterns ssh reads as intended.
func TestSSHConfigNameTags(t *testing.T) {
	evil := "box\n  ProxyCommand touch /tmp/pwned-by-a-name-tag"
	l := labtest.Start(t, lab.Options{Instances: []lab.InstanceSpec{{Name: evil, State: "running"}, {Name: `"a b"`, State: "running"}, {Name: "gpu1", State: "running"}}})
	dir := t.TempDir()
	if err := WriteFiles(dir, l, "/usr/local/bin/devgate", filepath.Join(dir, "id")); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, SSHConfigFile))
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "ProxyCommand touch") {
			t.Fatalf("the Name tag wrote a directive:\n%s", b)
		}
	}
	for _, host := range []string{"box---ProxyCommand-touch--tmp-pwned-by-a-name-tag", "a-b", "gpu1"} {
		out, err := exec.Command("ssh", "-G", "-F", filepath.Join(dir, SSHConfigFile), host).Output()
		if err != nil {
			t.Fatalf("ssh -G %s: %v", host, err)
		}
		if !strings.Contains(string(out), "proxycommand /usr/local/bin/devgate connect") || !strings.Contains(string(out), "hostname i-") {
			t.Fatalf("ssh -G %s: not the lab's Host block:\n%s", host, out)
		}
	}
}

// TestUpTLS: `up --tls` serves HTTPS with the lab's CA in D/ca.pem, and D/env
// points AWS_CA_BUNDLE at it: the AWS CLI (Python, its own TLS stack) trusts
// the lab with D/env and refuses it without AWS_CA_BUNDLE.
func TestUpTLS(t *testing.T) {
	awsBin, err := exec.LookPath("aws")
	if err != nil {
		t.Fatalf("aws CLI not on PATH (.ci/run installs it): %v", err)
	}
	dir := t.TempDir()
	var upOut, upErr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Main(context.Background(), []string{"up", "--dir", dir, "--tls", "--instance", "gpu1", "--pacing=false"}, &upOut, &upErr, nil)
	}()
	defer func() {
		var downOut bytes.Buffer
		Main(context.Background(), []string{"down", "--dir", dir}, &downOut, &downOut, nil)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("up still running after down")
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, PidFile)); err == nil {
			break
		}
		select {
		case code := <-done:
			t.Fatalf("up exited %d: %s %s", code, upOut.String(), upErr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("up did not write its pid file")
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, err := os.ReadFile(filepath.Join(dir, EnvFile))
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"HOME=" + t.TempDir(), "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "PATH=" + os.Getenv("PATH")}
	for _, line := range strings.Split(string(b), "\n") {
		if kv, ok := strings.CutPrefix(line, "export "); ok {
			k, v, _ := strings.Cut(kv, "=")
			env = append(env, k+"="+strings.Trim(v, "'"))
		}
	}
	if !strings.Contains(string(b), "AWS_ENDPOINT_URL='https://") && !strings.Contains(string(b), "AWS_ENDPOINT_URL=https://") ||
		!strings.Contains(string(b), filepath.Join(dir, "ca.pem")) {
		t.Fatalf("D/env lacks the https endpoint or AWS_CA_BUNDLE:\n%s", b)
	}
	cmd := exec.Command(awsBin, "sts", "get-caller-identity", "--output", "json")
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), `"Account"`) {
		t.Fatalf("aws with D/env: %v\n%s", err, out)
	}
	var noCA []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "AWS_CA_BUNDLE=") {
			noCA = append(noCA, kv)
		}
	}
	cmd = exec.Command(awsBin, "sts", "get-caller-identity", "--output", "json", "--cli-read-timeout", "5", "--cli-connect-timeout", "5")
	cmd.Env = append(noCA, "AWS_MAX_ATTEMPTS=1")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "CERTIFICATE_VERIFY_FAILED") {
		t.Fatalf("aws without the CA: %v\n%s", err, out)
	}
}
