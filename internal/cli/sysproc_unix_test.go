//go:build unix

package cli_test

import "syscall"

// newSession starts a process in a new session: no controlling terminal.
func newSession() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }
