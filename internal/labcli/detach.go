package labcli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// OutFile receives the output of a lab started with --detach.
const OutFile = "lab.out"

// errReported is an error whose message the command has already printed.
var errReported = errors.New("reported")

// upDetached starts `devgate-lab up` again without --detach, in its own
// session (a closing terminal does not stop it), and returns once the lab has
// written its pid file (ready: its banner goes to stdout) or has exited (its
// own error goes to stderr, and up fails).
func upDetached(ctx context.Context, dir string, args []string, wait time.Duration, stdout, stderr io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("--detach: cannot find devgate-lab's own binary: %w", err)
	}
	var child []string
	for _, a := range args {
		if a == "--detach" || strings.HasPrefix(a, "--detach=") {
			continue
		}
		child = append(child, a)
	}
	outPath := filepath.Join(dir, OutFile)
	out, err := os.OpenFile(outPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer devnull.Close()
	_ = os.Remove(filepath.Join(dir, PidFile)) // a stale one from a lab killed with -9
	cmd := exec.Command(exe, child...)
	cmd.Args[0] = os.Args[0] // the name it was run as (multi-call test binaries dispatch on it)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("--detach: start the lab: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case werr := <-exited:
			b, _ := os.ReadFile(outPath)
			stderr.Write(b)
			if len(b) == 0 {
				return fmt.Errorf("the lab exited before it was ready (%v); see %s", werr, filepath.Join(dir, LogFile))
			}
			return errReported
		case <-deadline.C:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			<-exited
			b, _ := os.ReadFile(outPath)
			stderr.Write(b)
			return fmt.Errorf("the lab was not ready within %s (--ready-timeout); see %s", wait, filepath.Join(dir, LogFile))
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
			<-exited
			return ctx.Err()
		case <-tick.C:
			b, err := os.ReadFile(filepath.Join(dir, PidFile))
			if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(cmd.Process.Pid) {
				continue
			}
			banner, _ := os.ReadFile(outPath)
			stdout.Write(banner)
			fmt.Fprintf(stdout, "running in the background (pid %d); stop it with: devgate-lab down --dir %s\n", cmd.Process.Pid, dir)
			_ = cmd.Process.Release()
			return nil
		}
	}
}
