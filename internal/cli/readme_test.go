package cli_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// readmeQuickStart returns the first command of README.md's quick start and
// the lines of its "then, in the same shell" block.
func readmeQuickStart(t *testing.T) (first string, then []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "\n## Quick start on the lab")
	if i < 0 {
		t.Fatal("README.md has no quick start section")
	}
	s = s[i+1:]
	if j := strings.Index(s, "\n## "); j >= 0 {
		s = s[:j]
	}
	blocks := regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(s, -1)
	if len(blocks) < 2 {
		t.Fatalf("the quick start has %d sh blocks, want the commands and the next steps", len(blocks))
	}
	lines := strings.Split(strings.TrimSpace(blocks[0][1]), "\n")
	first = lines[0]
	if !strings.HasPrefix(first, "export GOTOOLCHAIN=go1.27.3 && ") || !strings.Contains(first, "devgate-lab up") {
		t.Fatalf("the quick start's first command is not the lab one: %q", first)
	}
	for _, l := range strings.Split(strings.TrimSpace(blocks[1][1]), "\n") {
		then = append(then, l)
	}
	return first, then
}

// TestReadmeQuickStart runs README.md's quick start as a new user would, on
// a fresh lab: the first command (go install, the lab in the background, ssh
// to gpu1), then every command the section suggests, in one shell, stopping at
// the first failure. Only /tmp/ is replaced by a temporary directory, and HOME
// is a fresh directory that is not the passwd entry's (ssh expands ~ from
// passwd, so the lab's ssh config must use absolute paths). GOPATH is fresh
// too (go install writes its bin); the module and build caches are shared.
// Then: a lab that fails stops the first command with the lab's own message;
// a second lab with the same HOME (one ~/.ssh/devgate/known_hosts) works.
func TestReadmeQuickStart(t *testing.T) {
	first, then := readmeQuickStart(t)
	tmp := shortTempDir(t)
	home := filepath.Join(tmp, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	gopath := filepath.Join(tmp, "gopath")
	env := readmeEnv(t, home, gopath)
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	sub := func(s string) string { return strings.ReplaceAll(s, "/tmp/", tmp+"/") }
	labDir := sub("/tmp/devgate-lab")
	bin := filepath.Join(gopath, "bin")
	t.Cleanup(func() { exec.Command(filepath.Join(bin, "devgate-lab"), "down", "--dir", labDir).Run() })
	run := func(script string) (string, string, error) {
		cmd := exec.Command("bash", "-c", script)
		cmd.Dir, cmd.Env = repo, env
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		return o.String(), e.String(), err
	}

	script := "set -e\n" + sub(first) + "\n" + sub(strings.Join(then, "\n")) + "\n"
	stdout, stderr, err := run(script)
	if err != nil {
		t.Fatalf("README quick start failed: %v\n--- script\n%s--- stdout\n%s--- stderr\n%s", err, script, stdout, stderr)
	}
	for _, want := range []string{"ok\n", "devgate-lab is up at", "NAME", "gpu2"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "devgate: copied 1 file") || !strings.Contains(stdout, "✓ ssh -G gpu1") {
		t.Errorf("cp or doctor did not report as expected:\n--- stdout\n%s--- stderr\n%s", stdout, stderr)
	}

	// A lab that cannot start: the first command stops there, with the lab's message.
	if err := os.WriteFile(filepath.Join(labDir, "instance-ids.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err = run(sub(first))
	if err == nil || strings.Contains(stdout, "ok\n") || !strings.Contains(stderr, "instance-ids.json") || strings.Contains(stderr, "No such file") {
		t.Fatalf("a failing lab: err %v\n--- stdout\n%s--- stderr\n%s", err, stdout, stderr)
	}
	os.Remove(filepath.Join(labDir, "instance-ids.json"))

	// A second lab (new ids, new host keys) after the first, with the same
	// ~/.ssh/devgate/known_hosts, where cp pinned the first lab's gpu1 under its id.
	lab2 := filepath.Join(tmp, "lab2")
	t.Cleanup(func() { exec.Command(filepath.Join(bin, "devgate-lab"), "down", "--dir", lab2).Run() })
	if stdout, stderr, err := run("export PATH=" + bin + ":$PATH && devgate-lab up --dir " + lab2 + " --detach"); err != nil {
		t.Fatalf("second lab: %v\n--- stdout\n%s--- stderr\n%s", err, stdout, stderr)
	}
	var ids map[string]string
	if b, err := os.ReadFile(filepath.Join(lab2, "instance-ids.json")); err != nil || json.Unmarshal(b, &ids) != nil || ids["gpu1"] == "" {
		t.Fatalf("second lab's ids: %v %s", err, b)
	}
	// By id: a name cached for the first lab would still point at its gpu1 for
	// five minutes (re-resolving a cached name whose instance is gone is h3-fleet's work).
	script = "set -e\nexport PATH=" + bin + ":$PATH\n. " + lab2 + "/env\n" +
		"devgate cp " + tmp + "/big.bin " + ids["gpu1"] + ":" + tmp + "/y\n" +
		"ssh -F " + lab2 + "/ssh_config gpu1 cmp " + tmp + "/big.bin " + tmp + "/y\n" +
		"devgate-lab down --dir " + lab2 + "\n"
	if stdout, stderr, err := run(script); err != nil {
		t.Fatalf("second lab: %v\n--- stdout\n%s--- stderr\n%s", err, stdout, stderr)
	}
	kh, _ := os.ReadFile(filepath.Join(home, ".ssh", "devgate", "known_hosts"))
	if n := strings.Count(strings.TrimSpace(string(kh)), "\n") + 1; n != 2 {
		t.Fatalf("~/.ssh/devgate/known_hosts has %d pins, want one per lab:\n%s", n, kh)
	}
}

// readmeEnv is a new user's environment: no AWS or devgate variables, HOME
// and GOPATH fresh, and no devgate on PATH (testscript puts this test
// binary there under that name).
func readmeEnv(t *testing.T, home, gopath string) []string {
	t.Helper()
	cache := func(name string) string {
		out, err := exec.Command("go", "env", name).Output()
		if err != nil {
			t.Fatalf("go env %s: %v", name, err)
		}
		return strings.TrimSpace(string(out))
	}
	modcache, gocache := cache("GOMODCACHE"), cache("GOCACHE")
	var path []string
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		if _, err := os.Stat(filepath.Join(d, "devgate")); err == nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "devgate-lab")); err == nil {
			continue
		}
		path = append(path, d)
	}
	env := []string{"HOME=" + home, "GOPATH=" + gopath, "GOMODCACHE=" + modcache, "GOCACHE=" + gocache,
		"PATH=" + strings.Join(path, string(os.PathListSeparator))}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "HOME" || k == "PATH" || k == "GOPATH" || k == "GOBIN" || k == "GOMODCACHE" || k == "GOCACHE" || k == "GOTOOLCHAIN" || k == "GOFLAGS":
		case strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "DEVGATE_") || strings.HasPrefix(k, "XDG_"):
		default:
			env = append(env, kv)
		}
	}
	return env
}

// shortTempDir is a temporary directory with a short path (sockets and
// ControlPaths have length limits).
func shortTempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("/tmp", "dgq")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}
