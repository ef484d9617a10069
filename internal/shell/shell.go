// Package shell runs Session Manager shell-type sessions for `devgate shell`
// and `devgate exec`: a Standard_Stream or InteractiveCommands session bridged
// to the local terminal (raw mode, size messages, output as it comes), and a
// NonInteractiveCommands session that runs one command with stdout, stderr
// and the exit status kept apart (protocol doc §3.2, §4.1, §4.4).
//
// It is built on internal/tunnel (target lookup, starting a stopped
// instance, waiting for the agent, resume after drops, TerminateSession) and
// internal/datachannel (the wire, KMS), not on ssh: no sshd, key push or EC2
// Instance Connect is needed, so it also reaches hybrid mi- managed nodes.
// It prints nothing on its own except the session's bytes; progress goes
// through tunnel.Options.Progress.
package shell

import (
	"context"
	"errors"
	"io"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"golang.org/x/term"

	"github.com/devgate/devgate/internal/datachannel"
	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/ssmmsg"
	"github.com/devgate/devgate/internal/tunnel"
)

// Terminal is the local side of a shell session.
type Terminal struct {
	In  io.Reader
	Out io.Writer
	// Fd is In's file descriptor when In is a terminal (raw mode, size
	// messages), else -1.
	Fd int
}

// eot is what a terminal sends for Ctrl-D: at the start of a line the
// remote pty's line discipline turns it into end of file.
const eot = 0x04

// Run opens a shell session (o.Document, default SSM-SessionManagerRunShell)
// and bridges it to t until the remote shell exits, the service closes the
// session (idle timeout, maximum duration, TerminateSession) or ctx is
// cancelled (a signal). With a terminal it puts it in raw mode — Ctrl-C,
// Ctrl-Z and every other key go to the remote shell — and restores it on
// every return path, panics included; it sends the size at start and on each
// change. When stdin is not a terminal, its end is sent as Ctrl-D.
//
// It returns nil when the session ended normally, an *exitcode.Status when
// the agent reported a non-zero exit status (only NonInteractiveCommands
// sessions with separate output do: the real agent reports none for pty
// sessions, amazon-ssm-agent shell.go executeCommandsWithPty), and a
// classified error otherwise. ended receives the service's closing text ("" mostly).
func Run(ctx context.Context, cfg aws.Config, o tunnel.Options, t Terminal) (ended string, err error) {
	var exit atomic.Int64
	exit.Store(-1)
	o.OnPayload = func(pt ssmmsg.PayloadType, p []byte) {
		if pt == ssmmsg.PayloadExitCode {
			if n, err := ssmmsg.ParseExitCode(p); err == nil {
				exit.Store(int64(n))
			}
		} else if pt == ssmmsg.PayloadStdErr {
			_, _ = t.Out.Write(p)
		}
	}
	conn, err := tunnel.OpenShell(ctx, cfg, o)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	sess := conn.Session()
	if msg := sess.CustomerMessage(); msg != "" && o.Progress != nil {
		o.Progress("%s", msg)
	}
	if t.Fd >= 0 {
		old, err := term.MakeRaw(t.Fd)
		if err != nil {
			return "", exitcode.Wrap(err, exitcode.LocalIO, "run devgate shell from a terminal", "cannot put the terminal in raw mode")
		}
		defer func() {
			_ = term.Restore(t.Fd, old)
			if r := recover(); r != nil {
				panic(r)
			}
		}()
		sendSize := func() {
			if w, h, err := term.GetSize(t.Fd); err == nil && w > 0 && h > 0 {
				_ = sess.SendSize(w, h)
			}
		}
		sendSize()
		stop := watchSize(t.Fd, sendSize)
		defer stop()
	}
	outDone := make(chan error, 1)
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := sess.Read(buf)
			if n > 0 {
				if _, werr := t.Out.Write(buf[:n]); werr != nil {
					outDone <- nil // the local terminal is gone; end the session
					return
				}
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				outDone <- err
				return
			}
		}
	}()
	go func() {
		buf := make([]byte, ssmmsg.MaxPayload)
		for {
			n, err := t.In.Read(buf)
			if n > 0 {
				if _, werr := sess.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				if t.Fd < 0 && errors.Is(err, io.EOF) {
					_, _ = sess.Write([]byte{eot})
				}
				return
			}
		}
	}()
	select {
	case err := <-outDone:
		if err != nil {
			return "", err
		}
	case <-ctx.Done():
		return "", nil // the deferred Close sends TerminateSession (flag and API)
	}
	var ce *datachannel.ClosedError
	if errors.As(sess.Err(), &ce) {
		ended = ce.Output
	}
	if n := exit.Load(); n > 0 {
		return ended, &exitcode.Status{Code: int(n)}
	}
	return ended, nil
}
