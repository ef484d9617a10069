package cli

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/devgate/devgate/internal/awsapi"
	"github.com/devgate/devgate/internal/cmdargs"
	"github.com/devgate/devgate/internal/exitcode"
)

// TestHelpOnStdout: help (of the root, of a command, of a group run bare) goes
// to stdout, with nothing on stderr, and exits 0.
func TestHelpOnStdout(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {}, {"help", "cp"}, {"connect", "--help"}, {"vpn"}, {"vpn", "pki", "--help"}} {
		code, stdout, stderr := runCLI(t, "", args...)
		if code != 0 || !strings.Contains(stdout, "Usage:") || stderr != "" {
			t.Errorf("%v: exit %d, stdout %d bytes, stderr %q", args, code, len(stdout), stderr)
		}
	}
}

// TestEveryCommandHasExamples walks the whole tree; connect's examples carry
// the ProxyCommand line for ~/.ssh/config and the no-setup one-liner.
func TestEveryCommandHasExamples(t *testing.T) {
	root := NewRoot(IO{In: strings.NewReader(""), Out: os.Stdout, ErrOut: os.Stderr})
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c != root && !c.Hidden && strings.TrimSpace(c.Example) == "" {
			t.Errorf("%q has no Example (add one in examples.go or the command's file)", c.CommandPath())
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	code, stdout, _ := runCLI(t, "", "connect", "--help")
	ex := stdout[strings.Index(stdout, "Examples:"):]
	if code != 0 || !strings.Contains(ex, "\n  ProxyCommand devgate connect %h %p --user %r") ||
		!strings.Contains(ex, "ssh -o ProxyCommand='devgate connect %h %p --user %r' ec2-user@i-") {
		t.Fatalf("connect --help examples:\n%s", ex)
	}
}

// TestVersion: --version and version print the same line on stdout.
func TestVersion(t *testing.T) {
	c1, o1, e1 := runCLI(t, "", "--version")
	c2, o2, e2 := runCLI(t, "", "version")
	if c1 != 0 || c2 != 0 || o1 != o2 || !strings.HasPrefix(o1, "devgate ") || e1 != "" || e2 != "" {
		t.Fatalf("--version %d %q %q; version %d %q %q", c1, o1, e1, c2, o2, e2)
	}
}

// TestUsageErrors: each kind of usage error exits 2 with an error line and a hint line.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"conect", "gpu1", "22"}, `unknown command "conect" for "devgate" (did you mean "connect"?)`},
		{[]string{"vpn", "frob"}, `unknown command "frob" for "devgate vpn"`},
		{[]string{"connect", "gpu1"}, "missing <port> after <target>"},
		{[]string{"ls", "extra"}, `unexpected argument "extra" (devgate ls takes no arguments)`},
		{[]string{"exec", "gpu1"}, "missing CMD after <target>"},
		{[]string{"exec", "gpu1", "--"}, "missing CMD after <target>"},
		{[]string{"exec"}, "missing <target> and CMD"},
		{[]string{"exec", "gpu1", "ls"}, "put -- between the target and the command"},
		{[]string{"start", "gpu1", "gpu2"}, `unexpected argument "gpu2" (devgate start takes <target> only)`},
		{[]string{"doctor", "gpu1", "gpu2"}, `unexpected argument "gpu2" (devgate doctor takes [target] only)`},
		{[]string{"prefs", "set"}, "missing KEY=VALUE"},
		{[]string{"ls", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"cp", "-j", "x", "a", "b"}, `invalid argument "x" for "-j, --jobs"`},
		{[]string{"cp", "a", "b"}, "exactly one of SRC and DST must be <target>:<path>"},
		{[]string{"completion", "tcsh"}, `unknown command "tcsh" for "devgate completion"`},
	} {
		code, stdout, stderr := runCLI(t, "", tc.args...)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if code != int(exitcode.Usage) || len(lines) != 2 || lines[0] != "devgate: error: "+tc.want && !strings.Contains(lines[0], tc.want) ||
			!strings.HasPrefix(lines[1], "devgate: hint: ") || stdout != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2 and an error line with %q and a hint line", tc.args, code, stdout, stderr, tc.want)
		}
	}
}

// TestArgErrorsShowUsage: a wrong number of arguments says what is missing
// or extra, in the words of the usage line, and the hint is that line.
func TestArgErrorsShowUsage(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		error, use string
	}{
		{[]string{"exec", "gpu1"}, "missing CMD after <target>", "devgate exec <target> -- CMD [ARGS...]"},
		{[]string{"exec", "gpu1", "ls"}, "put -- between the target and the command", "devgate exec <target> -- CMD [ARGS...]"},
		{[]string{"forward", "gpu1"}, "missing SPEC after <target>", "devgate forward <target> SPEC..."},
		{[]string{"cp", "gpu1:/x"}, "missing DST after SRC", "devgate cp [-r] [-j N] SRC DST"},
		{[]string{"vpn", "pki", "issue"}, "missing NAME", "devgate vpn pki issue NAME"},
	} {
		code, _, stderr := runCLI(t, "", tc.args...)
		want := "devgate: error: " + tc.error + "\ndevgate: hint: usage: " + tc.use
		if code != int(exitcode.Usage) || !strings.HasPrefix(stderr, want) || strings.Contains(stderr, "arg(s)") {
			t.Errorf("%v: exit %d\n%s\nwant exit 2 and\n%s", tc.args, code, stderr, want)
		}
	}
}

// TestArgsMatchUsageLines: for every command, its argument check and its
// usage line agree on how many arguments it takes (0 to 4 given), and a
// refusal never says cobra's "arg(s)" or "unknown command" for a command
// without subcommands: cmdargs names what is wrong from the usage line.
func TestArgsMatchUsageLines(t *testing.T) {
	root := NewRoot(IO{In: strings.NewReader(""), Out: io.Discard, ErrOut: io.Discard})
	checkArgsMatchUsage(t, root)
}

func checkArgsMatchUsage(t *testing.T, c *cobra.Command) {
	t.Helper()
	for _, sub := range c.Commands() {
		checkArgsMatchUsage(t, sub)
	}
	if c.Args == nil || c.HasSubCommands() || c.Name() == "help" {
		return
	}
	ps := cmdargs.Positional(c.Use)
	required, repeated := 0, len(ps) > 0 && ps[len(ps)-1].Repeated
	for _, a := range ps {
		if !a.Optional {
			required++
		}
	}
	for n := range 5 {
		args := []string{"a1", "a2", "a3", "a4"}[:n]
		err := c.Args(c, args)
		fits := n >= required && (repeated || n <= len(ps))
		if (err == nil) != fits {
			t.Errorf("%s (usage %q) with %d args: check says %v, the usage line says fits=%v", c.CommandPath(), c.Use, n, err, fits)
		}
		if err != nil && (strings.Contains(err.Error(), "arg(s)") || strings.Contains(err.Error(), "unknown command")) {
			t.Errorf("%s with %d args: %q (cobra's words)", c.CommandPath(), n, err)
		}
	}
}

// TestCompletion: every shell's script goes to stdout; completing a target
// offers the names `ls` cached and the managed config's aliases, with no AWS call
// (no AWS configuration at all here).
func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
		code, stdout, stderr := runCLI(t, "", "completion", sh)
		if code != 0 || len(stdout) < 1000 || !strings.Contains(stdout, "devgate") || stderr != "" {
			t.Errorf("completion %s: exit %d, %d bytes on stdout, stderr %q", sh, code, len(stdout), stderr)
		}
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(home, ".cache"))
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1") // a call would fail: completion makes none
	awsapi.RememberInstances(filepath.Join(home, ".cache", "devgate", "targets.json"), []awsapi.Instance{
		{ID: "i-0aaaaaaaaaaaaaaa1", Name: "gpu1", State: "running"},
		{ID: "i-0aaaaaaaaaaaaaaa2", Name: "gpu2", State: "stopped"},
		{ID: "i-0aaaaaaaaaaaaaaa3", Name: "old", State: "terminated"},
	}, time.Now())
	if err := os.MkdirAll(filepath.Join(home, ".ssh", "devgate"), 0o700); err != nil {
		t.Fatal(err)
	}
	managed := "Host devbox-train\n  HostName i-0bbbbbbbbbbbbbbb1\n"
	if err := os.WriteFile(filepath.Join(home, ".ssh", "devgate", "config"), []byte(managed), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"connect", "forward", "start", "stop", "doctor"} {
		_, stdout, _ := runCLI(t, "", "__complete", cmd, "")
		for _, want := range []string{"gpu1\n", "gpu2\n", "devbox-train\n", "i-0aaaaaaaaaaaaaaa1\n"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("__complete %s: no %q in\n%s", cmd, want, stdout)
			}
		}
		if strings.Contains(stdout, "old") {
			t.Errorf("__complete %s offers a terminated instance:\n%s", cmd, stdout)
		}
	}
	_, stdout, _ := runCLI(t, "", "__complete", "cp", "./f", "gp")
	if !strings.Contains(stdout, "gpu1:\n") || !strings.Contains(stdout, "gpu2:\n") || strings.Contains(stdout, "devbox-train") {
		t.Errorf("__complete cp ./f gp:\n%s", stdout)
	}
	_, stdout, _ = runCLI(t, "", "__complete", "cp", "ec2-user@gpu")
	if !strings.Contains(stdout, "ec2-user@gpu1:\n") {
		t.Errorf("__complete cp ec2-user@gpu:\n%s", stdout)
	}
}
