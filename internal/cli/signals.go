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
// A second SIGINT or SIGTERM while the clean end runs exits the process at
// once with 128+signal (a user pressing Ctrl-C again); a second SIGHUP does
// not (a terminal's hangup and then ssh's own SIGHUP as it exits are one
// event for us, and the clean end is bounded). SIGPIPE is ignored: a write to a closed stdout (ssh has gone)
// returns EPIPE to the copier instead of killing the process before the
// clean end. stop releases the signals, and from then on ignores SIGHUP.
//
// A command may gate SIGHUP (withHangupGate): connect takes it as ssh's
// "go away" only when ssh is really going away.
func SignalContext(parent context.Context) (ctx context.Context, stop func()) {
	signal.Ignore(syscall.SIGPIPE)
	gate := &hangupGate{}
	ctx, cancel := context.WithCancelCause(context.WithValue(parent, hangupGateKey{}, gate))
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-ch:
				if sig == syscall.SIGHUP && !gate.confirm() {
					continue
				}
				cancel(&SignalError{Signal: sig})
			case <-done:
				return
			}
			break
		}
		for {
			select {
			case sig := <-ch:
				if sig == syscall.SIGHUP {
					// Another "the other side went away" (ssh's SIGHUP after
					// the terminal's): the clean end is bounded; let it run.
					continue
				}
				code := 128 + 2
				if s, ok := sig.(syscall.Signal); ok {
					code = 128 + int(s)
				}
				os.Exit(code)
			case <-done:
			}
			return
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			// The command is done: a SIGHUP from now on (ssh's, sent as it
			// exits after the last bytes) must not kill the exiting process
			// and replace its exit code (default action once Stop restores it).
			signal.Ignore(syscall.SIGHUP)
			signal.Stop(ch)
			close(done)
			cancel(nil)
		})
	}
}

// hangupGate decides whether a SIGHUP ends the command (nil check: it does).
type hangupGate struct {
	mu    sync.Mutex
	check func() bool
}

type hangupGateKey struct{}

func (g *hangupGate) confirm() bool {
	g.mu.Lock()
	check := g.check
	g.mu.Unlock()
	return check == nil || check()
}

// withHangupGate makes check decide, until restore, whether a SIGHUP
// cancels ctx (a context from SignalContext; elsewhere it does nothing).
// check runs on the signal goroutine and may block briefly.
func withHangupGate(ctx context.Context, check func() bool) (restore func()) {
	g, ok := ctx.Value(hangupGateKey{}).(*hangupGate)
	if !ok {
		return func() {}
	}
	g.mu.Lock()
	g.check = check
	g.mu.Unlock()
	return func() {
		g.mu.Lock()
		g.check = nil
		g.mu.Unlock()
	}
}
