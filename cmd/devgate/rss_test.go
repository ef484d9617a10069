//go:build linux

package main

// The peak RSS of `devgate connect`, the process ssh keeps alive for the
// whole session: the release binary (.goreleaser.yaml's flags) as ssh's
// ProxyCommand, through the lab, to a real sshd. Its peak is read from the
// kernel (wait4's ru_maxrss: VmHWM when it exits) by a wrapper between ssh and
// devgate (this test binary, started by ssh), which passes ssh's SIGHUP on.
//
// The figure to reach is the benchmark's (bench/connect.sh, BENCHMARKS.md
// "Peak RSS of devgate connect"); this test is the regression guard, with
// headroom for a loaded machine and for how the page cache holds a binary
// fresh from the linker (BENCHMARKS.md: 0–2 MiB more than an installed copy).

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labtest"
	"github.com/devgate/devgate/internal/labcli"
)

// The most a connect process may reach (MiB). Measured here (release build
// fresh from the linker, 2026-12): 30.7–32.2 paced, 36.1–37.3 unpaced, the
// same with three busy loops beside it. The bounds catch what grows with the
// data (a slurped stream, a buffer that keeps growing: h10's growing output
// slice took the unpaced peak from 43 to 53 MiB) and a startup that grows by
// a quarter, not a single MiB; unpaced keeps room for the output buffer
// (datachannel's 8 MiB ReadBuffer) filling while a loaded ssh reads slowly.
const (
	pacedBound   = 40
	unpacedBound = 48
)

// wrapEnv makes the test binary the rusage wrapper: run the rest of argv,
// pass SIGHUP on, and when it exits write "<ru_maxrss KiB> <exit code>" to
// the file named by the variable.
const wrapEnv = "DEVGATE_TEST_RUSAGE_OUT"

func TestMain(m *testing.M) {
	if out := os.Getenv(wrapEnv); out != "" {
		os.Exit(rusageWrap(out, os.Args[1:]))
	}
	os.Exit(m.Run())
}

func rusageWrap(out string, argv []string) int {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = os.Environ()
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() {
		for s := range hup {
			_ = cmd.Process.Signal(s)
		}
	}()
	_ = cmd.Wait()
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	_ = os.WriteFile(out+".tmp", fmt.Appendf(nil, "%d %d\n", ru.Maxrss, cmd.ProcessState.ExitCode()), 0o600)
	_ = os.Rename(out+".tmp", out)
	return cmd.ProcessState.ExitCode()
}

// buildRelease builds this command with the release flags (.ci/release
// builds the same before the tests, so only the link is new).
func buildRelease(t *testing.T, ctx context.Context) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "devgate")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestConnectPeakRSS(t *testing.T) {
	// The build is a link when .ci/release ran first (same flags); from a cold cache
	// on a loaded machine it compiles every package again: minutes.
	bctx, bcancel := context.WithTimeout(context.Background(), 15*time.Minute)
	devgate := buildRelease(t, bctx)
	bcancel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		pacing bool
		size   int64
		bound  float64
	}{
		{"paced", true, 2 << 20, pacedBound},       // the real agent's pace: 1 KiB per ms
		{"unpaced", false, 16 << 20, unpacedBound}, // as fast as ssh reads
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := labtest.Fast()
			f.Pacing = tc.pacing
			l := labtest.Start(t, lab.Options{Faults: f})
			dir, home := t.TempDir(), t.TempDir()
			if err := labcli.WriteFiles(dir, l, devgate, filepath.Join(home, ".ssh", "devgate", "id_ed25519")); err != nil {
				t.Fatal(err)
			}
			env := []string{"HOME=" + home, "XDG_CACHE_HOME=" + filepath.Join(home, ".cache")}
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "XDG_") && !strings.HasPrefix(kv, "DEVGATE_") {
					env = append(env, kv)
				}
			}
			env = append(env, l.Env()...)
			out := filepath.Join(dir, "rusage")
			env = append(env, wrapEnv+"="+out)
			// ssh keeps the first value of an option: the command line's ProxyCommand
			// (the wrapper around the same devgate connect) wins over the config's.
			cmd := exec.CommandContext(ctx, "ssh", "-F", filepath.Join(dir, labcli.SSHConfigFile),
				"-o", "BatchMode=yes", "-o", "ControlMaster=no", "-o", "ControlPath=none",
				"-o", fmt.Sprintf("ProxyCommand=%s %s connect %%h %%p --user %%r", self, devgate),
				"gpu1", fmt.Sprintf("head -c %d /dev/zero", tc.size))
			cmd.Env = env
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, stdout)
			if err := cmd.Wait(); err != nil || n != tc.size {
				t.Fatalf("ssh: %v, %d of %d bytes\n%s", err, n, tc.size, stderr.String())
			}
			// The wrapper writes once devgate has exited, after ssh.
			var b []byte
			for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				if b, err = os.ReadFile(out); err == nil {
					break
				}
			}
			if err != nil {
				t.Fatalf("devgate connect did not exit within a minute of ssh: %v\n%s", err, stderr.String())
			}
			f2 := strings.Fields(string(b))
			kib, err1 := strconv.ParseInt(f2[0], 10, 64)
			code, err2 := strconv.Atoi(f2[1])
			if err1 != nil || err2 != nil {
				t.Fatalf("rusage file %q", b)
			}
			mib := float64(kib) / 1024
			t.Logf("devgate connect, %d MiB %s: peak RSS %.1f MiB (bound %.0f MiB), exit %d", tc.size>>20, tc.name, mib, tc.bound, code)
			if code != 0 {
				t.Errorf("devgate connect exited %d\n%s", code, stderr.String())
			}
			if mib < 4 { // what a Go program that ran the session cannot stay under: not devgate's figure
				t.Fatalf("peak RSS %.1f MiB: not the connect process's", mib)
			}
			if mib > tc.bound {
				t.Errorf("peak RSS of devgate connect %.1f MiB > %.0f MiB (BENCHMARKS.md, Peak RSS of devgate connect)", mib, tc.bound)
			}
		})
	}
}
