package cli

import (
	"bytes"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/devgate/devgate/internal/eventlog"
)

// stderrHidden reports whether f is /dev/null: what OpenSSH gives a
// ProxyCommand as stderr under ControlPersist (sshconnect.c
// ssh_proxy_connect), and what a daemonised ControlMaster keeps. Nobody
// sees what devgate writes there.
func stderrHidden(f *os.File) bool {
	st, err := f.Stat()
	if err != nil {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err == nil && os.SameFile(st, null)
}

// openTerminal opens the controlling terminal for writing ("/dev/tty"), or fails when there is none.
func openTerminal() (io.WriteCloser, error) { return os.OpenFile("/dev/tty", os.O_WRONLY, 0) }

// hiddenStderr stands in for a stderr nobody sees. Lines go to the
// controlling terminal while the command is getting ready (progress, and
// the final error and hint); once the command has settled (connect's stream
// is up and ssh owns the terminal) or when there is no terminal, lines go
// to the event log as progress events instead.
type hiddenStderr struct {
	log             *eventlog.Log
	command, target string

	mu      sync.Mutex
	open    func() (io.WriteCloser, error) // the terminal; nil: none
	tty     io.WriteCloser                 // open while not settled; nil: no terminal
	settled bool
	partial []byte
	// ppid is the parent devgate started under (ssh, for connect);
	// parentGone reports that it has exited (devgate was re-parented).
	ppid       int
	parentGone func(ppid int) bool
}

// newHiddenStderr opens the terminal, if there is one.
func newHiddenStderr(log *eventlog.Log, open func() (io.WriteCloser, error)) *hiddenStderr {
	h := &hiddenStderr{log: log, open: open, ppid: os.Getppid(), parentGone: func(ppid int) bool { return os.Getppid() != ppid }}
	if open != nil {
		if tty, err := open(); err == nil {
			h.tty = tty
		} else {
			h.open = nil
		}
	}
	return h
}

func (h *hiddenStderr) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tty != nil && !h.settled {
		h.writeTTY(p)
		return len(p), nil
	}
	h.partial = append(h.partial, p...)
	for {
		i := bytes.IndexByte(h.partial, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimPrefix(string(h.partial[:i]), "devgate: ")
		h.partial = h.partial[i+1:]
		if strings.TrimSpace(line) != "" {
			_ = h.log.Append(eventlog.Event{Kind: eventlog.KindProgress, Command: h.command, Target: h.target, Message: line})
		}
	}
	return len(p), nil
}

// writeTTY writes p with CRLF line ends: ssh may have the terminal in raw mode.
func (h *hiddenStderr) writeTTY(p []byte) {
	_, _ = h.tty.Write(bytes.ReplaceAll(p, []byte("\n"), []byte("\r\n")))
}

// settle sends later lines to the event log and lets go of the terminal:
// it belongs to the session now (a ControlPersist master lives on for
// minutes; holding the terminal open would keep it from closing).
func (h *hiddenStderr) settle() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.settled = true
	if h.tty != nil {
		h.tty.Close()
		h.tty = nil
	}
}

// final is where the last error and hint go: the terminal when there is
// one (reopened after settle: the session is over), else nowhere (Main
// records the failure itself).
func (h *hiddenStderr) final() io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.tty == nil && h.open != nil {
			if tty, err := h.open(); err == nil {
				h.tty = tty
			}
		}
		if h.tty != nil {
			h.writeTTY(p)
		}
		return len(p), nil
	})
}

// notice is where a line goes that explains why a settled session ended
// under a running ssh (the instance stopped, the service ended the session):
// the event log, as every settled line, and the terminal while the ssh
// that started devgate still runs in it. That ssh is about to end with no
// more than its own "Connection to … closed"; once it has exited (a
// ControlPersist master outliving its first ssh), the terminal runs other
// things and is not written to.
func (h *hiddenStderr) notice() io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		h.mu.Lock()
		settled := h.settled
		h.mu.Unlock()
		n, _ := h.Write(p) // not settled: to the terminal already
		if !settled || h.open == nil || h.parentGone(h.ppid) {
			return n, nil
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if tty, err := h.open(); err == nil {
			_, _ = tty.Write(bytes.ReplaceAll(p, []byte("\n"), []byte("\r\n")))
			tty.Close()
		}
		return n, nil
	})
}

func (h *hiddenStderr) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tty != nil {
		h.tty.Close()
		h.tty = nil
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
