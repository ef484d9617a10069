package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// SignalError is the cause of a context ended by SignalContext.
type SignalError struct{ Signal os.Signal }

func (e *SignalError) Error() string { return fmt.Sprintf("received %v", e.Signal) }

// Unwrap makes a signal a cancellation: errors.Is(err, context.Canceled).
func (e *SignalError) Unwrap() error { return context.Canceled }

// SignalContext returns a context cancelled (with a *SignalError cause) by
// the first SIGINT, SIGTERM or SIGHUP, so that every command ends its
// sessions cleanly (the TerminateSession flag and API) before it exits. ssh
// ends its ProxyCommand with SIGHUP (OpenSSH sshconnect.c, kill_proxy_command)
// and closing a terminal sends SIGHUP to `devgate forward`.
//
// A second signal while the clean end runs exits the process at once with
// 128+signal. SIGPIPE is ignored: a write to a closed stdout (ssh has gone)
// returns EPIPE to the copier instead of killing the process before the
// clean end. stop releases the signals.
func SignalContext(parent context.Context) (ctx context.Context, stop func()) {
	signal.Ignore(syscall.SIGPIPE)
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			cancel(&SignalError{Signal: sig})
		case <-done:
			return
		}
		select {
		case sig := <-ch:
			code := 128 + 2
			if s, ok := sig.(syscall.Signal); ok {
				code = 128 + int(s)
			}
			os.Exit(code)
		case <-done:
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			signal.Stop(ch)
			close(done)
			cancel(nil)
		})
	}
}
