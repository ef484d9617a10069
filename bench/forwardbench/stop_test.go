package main

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStopGroupEndsAParentThatIgnoresSIGINT models the AWS CLI: a parent
// that ignores SIGINT and waits for its child. stopGroup must return and
// leave neither process behind.
func TestStopGroupEndsAParentThatIgnoresSIGINT(t *testing.T) {
	cmd := exec.Command("sh", "-c", `trap '' INT; sleep 300 & echo $!; wait`)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 32)
	n, _ := out.Read(buf)
	child, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil {
		t.Fatalf("child pid %q: %v", buf[:n], err)
	}
	done := make(chan struct{})
	go func() { stopGroup(cmd, 500*time.Millisecond); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("stopGroup hung on a parent that ignores SIGINT")
	}
	// Killed, the orphan is a zombie until its new parent reaps it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(child) + "/stat")
		if errors.Is(err, os.ErrNotExist) {
			return
		}
		if err == nil {
			if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); len(f) > 0 && f[0] == "Z" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the child %d still runs after stopGroup: %s", child, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
