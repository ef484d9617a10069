package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/devgate/devgate/internal/awsapi"
	"github.com/devgate/devgate/internal/config"
	"github.com/devgate/devgate/internal/datachannel"
	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/hostpin"
	"github.com/devgate/devgate/internal/sshconfig"
	"github.com/devgate/devgate/internal/sshkey"
	"github.com/devgate/devgate/internal/stdpipe"
	"github.com/devgate/devgate/internal/tunnel"
)

func init() { register(newConnectCommand) }

func newConnectCommand(io IO) *cobra.Command {
	var af awsFlags
	var user, key, document, logFile, prefix, reason string
	var noStart, verbose, quiet bool
	var timeout, resumeTimeout, liveness time.Duration
	var pf pathFlags
	cmd := &cobra.Command{
		Use:   "connect <target> <port>",
		Short: "Tunnel stdin/stdout to a port of an instance (the ssh ProxyCommand)",
		Long: `connect is what ssh runs as ProxyCommand: ProxyCommand devgate connect %h %p --user %r.
It resolves the target, starts the instance if it is stopped, waits for it and its SSM agent,
pushes a temporary key with EC2 Instance Connect, opens a Session Manager session to the port
and bridges it to stdin/stdout. stdout carries only the stream; progress goes to stderr.`,
		Example: `  # without devgate setup: one line, the key ssh offers (ssh-agent's first, else ~/.ssh/id_*) is pushed
  ssh -o ProxyCommand='devgate connect %h %p --user %r' ec2-user@i-0123456789abcdef0

  # in ~/.ssh/config (devgate setup writes this for you)
  ProxyCommand devgate connect %h %p --user %r --profile work --region eu-west-1`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			port, err := strconv.Atoi(args[1])
			if err != nil || port < 1 || port > 65535 {
				return exitcode.New(exitcode.Usage, "ProxyCommand devgate connect %h %p", "port %q is not a port number", args[1])
			}
			log, closeLog, err := connectLogger(io, logFile, verbose)
			if err != nil {
				return err
			}
			defer closeLog()
			t, err := resolveTarget(args[0], config.Settings{User: user, Profile: af.profile, Region: af.region, Path: pf.path}, prefix)
			if err != nil {
				return err
			}
			pub, err := pushKey(key, true, func(format string, a ...any) {
				if !quiet {
					fmt.Fprintf(io.ErrOut, "devgate: "+format+"\n", a...)
				}
			})
			if err != nil {
				return err
			}
			cfg, err := t.aws(ctx, log)
			if err != nil {
				return err
			}
			progress := func(format string, a ...any) {
				log.Info(fmt.Sprintf(format, a...))
				if !quiet {
					fmt.Fprintf(io.ErrOut, "devgate: "+format+"\n", a...)
				}
			}
			opts := tunnel.Options{Target: args[0], Port: port, User: t.User, PublicKey: pub, Document: document,
				NoStart: noStart, Timeout: timeout, ResumeTimeout: resumeTimeout, Liveness: liveness, Resolve: t.Resolve,
				Progress: progress, Logger: log, Reason: sessionReason(reason, "connect"),
				OnReconnect: func(err error) {
					if err != nil {
						progress("connection lost (%v); resuming", err)
					} else {
						progress("resumed")
					}
				}}
			opts.StateDir = stateDir()
			// One session on one P (oneP): the data channel's reader may hold
			// its thread while a paced stream's messages gather (BENCHMARKS.md,
			// "Holding a paced stream").
			opts.HoldThread = true
			if opts.Path, opts.DirectBudget, err = pf.resolve(t.Path); err != nil {
				return err
			}
			opts.KeyAuthorized = key != "" // a managed node (mi-…) is reached with it without a push
			ensureShortControlDir(io)
			opts.OnResolved = func(r awsapi.Target) { followAlias(ctx, io, args[0], r.ID, quiet) }
			conn, err := tunnel.Dial(ctx, cfg, opts)
			if err != nil {
				return err
			}
			if io.settle != nil {
				io.settle() // the terminal is ssh's now: later progress goes to the event log
			}
			oneP()
			noticeOut := io.notice
			if noticeOut == nil {
				noticeOut = io.ErrOut
			}
			notice := func(format string, a ...any) { // not silenced by --quiet: it explains ssh's "closed"
				log.Info(fmt.Sprintf(format, a...))
				fmt.Fprintf(noticeOut, "devgate: "+format+"\n", a...)
			}
			return bridge(ctx, io, conn, progress, notice)
		},
	}
	af.add(cmd)
	pf.add(cmd)
	f := cmd.Flags()
	f.StringVar(&user, "user", "", "OS user to push the key for (ssh's %r; default $DEVGATE_USER, else devgate's config, else "+config.DefaultUser+")")
	f.StringVar(&key, "key", "", "private key whose public half is pushed (default ~/.ssh/devgate/id_ed25519; without it, the key ssh offers: ssh-agent's first, else ~/.ssh/id_*; else devgate's is created)")
	f.StringVar(&document, "document", tunnel.DocSSH, "session document: "+tunnel.DocSSH+" or "+tunnel.DocPortForwarding)
	f.BoolVar(&noStart, "no-start", false, "fail instead of starting a stopped instance")
	f.DurationVar(&timeout, "timeout", 10*time.Minute, "bound on waiting for the instance, its agent and the session")
	f.DurationVar(&resumeTimeout, "resume-timeout", 2*time.Minute, "give up when a dropped data channel cannot be resumed within this")
	f.DurationVar(&liveness, "liveness", datachannel.DefaultLiveness, "treat a data channel that sends nothing (no data, no pong) for this long as dropped, and resume it")
	f.StringVar(&logFile, "log-file", "", "append a log to this file (0600)")
	f.BoolVarP(&verbose, "verbose", "v", false, "debug log (to --log-file, else stderr)")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress lines on stderr (errors still)")
	f.StringVar(&reason, "reason", "", "why the session is opened, recorded by Session Manager and CloudTrail (default: devgate <command> by <local user>)")
	addPrefixFlag(cmd, &prefix)
	return cmd
}

// oneP runs the rest of connect (the session) on one P, unless the
// GOMAXPROCS environment variable says otherwise. The session's hot path
// is one goroutine per message (the data channel's reader writes stdout and
// its acks itself); with more Ps, each goroutine the runtime readies also
// wakes an idle P's thread (runtime.wakep) for nothing but a futex and a
// context switch. BENCHMARKS.md, "One goroutine per message": less CPU per
// MiB at the agent's pace and a shorter round trip, throughput kept.
func oneP() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}

// followAlias records the instance an alias reached; when the alias's Name
// now belongs to another instance (replaced), it unpins the alias's old host
// key so that ssh pins the new one, and says so once.
func followAlias(ctx context.Context, io IO, alias, id string, quiet bool) {
	home, _, err := homeDir()
	state := stateDir()
	if err != nil || state == "" {
		return
	}
	prev, err := hostpin.Follow(ctx, filepath.Join(state, "aliases.json"), sshconfig.KnownHostsPath(home), alias, id)
	if err != nil {
		fmt.Fprintf(io.ErrOut, "devgate: warning: cannot update the host key record of %s: %v\n", alias, err)
	}
	if prev != "" && !quiet {
		fmt.Fprintf(io.ErrOut, "devgate: %s now reaches %s (it reached %s before: replaced under the same Name); its new host key will be pinned\n", alias, id, prev)
	}
}

// ensureShortControlDir creates the short ControlMaster directory under /tmp
// that setup chose for a long home directory: /tmp is emptied at boot, and
// ssh binds its mux socket there only after this ProxyCommand has connected.
func ensureShortControlDir(io IO) {
	home, _, err := homeDir()
	if err != nil || runtime.GOOS == "windows" {
		return
	}
	if sshconfig.ControlDir(sshconfig.Options{GOOS: runtime.GOOS, Home: home}) != sshconfig.ShortControlDir {
		return
	}
	if _, err := os.Stat(sshconfig.ManagedPath(home)); err != nil {
		return // no setup: nothing of ours uses it
	}
	if err := sshconfig.EnsureControlDir(home, sshconfig.ShortControlDir); err != nil {
		fmt.Fprintf(io.ErrOut, "devgate: warning: %v; ssh's connection sharing may fail\n", err)
	}
}

// connectLogger returns the logger of connect: a file, or stderr with
// --verbose, or nothing. stdout is never used.
func connectLogger(io IO, path string, verbose bool) (*slog.Logger, func(), error) {
	lvl := slog.LevelInfo
	if verbose {
		lvl = slog.LevelDebug
	}
	switch {
	case path != "":
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, nil, exitcode.Wrap(err, exitcode.LocalIO, "choose a writable --log-file", "cannot open the log file")
		}
		return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: lvl})), func() { f.Close() }, nil
	case verbose:
		return slog.New(slog.NewTextHandler(io.ErrOut, &slog.HandlerOptions{Level: lvl})), func() {}, nil
	}
	return slog.New(slog.DiscardHandler), func() {}, nil
}

// connectKey returns the authorized_keys line to push: --key's public half,
// or devgate's own key (created on first use).
func connectKey(path string) (string, error) {
	return pushKey(path, false, nil)
}

// pushKey is connectKey; with offered, when --key is not given and devgate's
// own key does not exist (no `devgate setup`: a bare ProxyCommand), it pushes
// the key plain ssh will offer instead (the ssh-agent's first, else the first
// ~/.ssh/id_*), and tells say which.
func pushKey(path string, offered bool, say func(string, ...any)) (string, error) {
	if path == "" {
		home, _, err := homeDir()
		if err != nil {
			return "", err
		}
		own := sshkey.DefaultPath(home)
		if _, err := os.Stat(own); errors.Is(err, os.ErrNotExist) && offered {
			if pub, src, ok := sshkey.Offered(home, os.Getenv("SSH_AUTH_SOCK")); ok {
				if say != nil {
					say("no devgate key (%s): pushing the key ssh offers first, from %s (%s)", own, src, pub.Fingerprint)
				}
				return pub.AuthorizedKey, nil
			}
		}
		k, err := sshkey.Ensure(own)
		if err != nil {
			return "", err
		}
		return k.Public.AuthorizedKey, nil
	}
	p, err := sshkey.LoadPublic(sshkey.PublicPath(path))
	if err != nil {
		p, err = sshkey.LoadPublic(path)
	}
	if err != nil {
		return "", exitcode.Wrap(err, exitcode.Config, "pass the private key path; its .pub must sit beside it", "cannot read the public key of %s", path)
	}
	return p.AuthorizedKey, nil
}

// bridge copies stdin to the tunnel and the tunnel to stdout until one side
// ends, then ends the session on the service (conn.Terminate: the flag and
// the API, bounded). stdin EOF first waits (bounded, and cut short by a
// signal) until what was written reached the agent; stdout closed (EPIPE),
// a signal (ssh sends SIGHUP) and the service ending the session go straight
// to the clean end.
//
// A SIGHUP ends the session only when ssh is going away: ssh sends it to its
// ProxyCommand just before it exits, so stdin ends within moments. A SIGHUP
// while stdin stays open came from elsewhere — the terminal the first ssh
// ran in closed, while the ControlPersist master it left (in a session of
// its own) still uses this connection — and is ignored, with a log line.
//
// stdin and stdout are read and written through the runtime's poller when
// they are pipes or sockets of their own (stdStreams); on the Session
// Manager path the output goes through conn.WriteTo, and the data channel's
// reader then writes it to stdout itself.
func bridge(ctx context.Context, io IO, conn *tunnel.Conn, progress, notice func(string, ...any)) error {
	in, out, restore := stdStreams(io, conn.Path != tunnel.PathDirect)
	defer restore() // last: after Terminate, when the data channel's reader has stopped
	nc := &netSide{rw: conn}
	outDone := make(chan error, 1)
	go func() {
		var err error
		if conn.Path == tunnel.PathDirect {
			_, err = copyFlush(out, nc)
		} else {
			_, err = conn.WriteTo(out)
		}
		outDone <- err
	}()
	inDone := make(chan error, 1)
	stdinEnded := make(chan struct{})
	go func() {
		_, err := copyFlush(nc, in)
		close(stdinEnded)
		inDone <- err
	}()
	defer withHangupGate(ctx, func() bool {
		select {
		case <-stdinEnded:
			return true
		case <-time.After(hangupGrace):
			progress("SIGHUP while ssh still holds the connection (the terminal it started in has closed?): carrying on")
			return false
		}
	})()
	defer func() { _ = conn.Terminate(ctx) }()
	select {
	case err := <-inDone:
		if err == nil { // stdin EOF: ssh is done with us
			fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_ = conn.CloseWrite(fctx)
			cancel()
		}
		if err != nil && conn.Path == tunnel.PathDirect && nc.failed() != nil { // the write to the network failed
			return directLost(conn, nc.failed())
		}
		return nil
	case <-outDone:
		if conn.Path == tunnel.PathDirect {
			return directEnd(ctx, conn, nc.failed(), inDone)
		}
		return sessionEnd(conn, notice)
	case <-ctx.Done():
		if conn.SessionID != "" {
			progress("terminating session %s (%v)", conn.SessionID, context.Cause(ctx))
		}
		return nil
	}
}

// hangupGrace is how long a SIGHUP waits for stdin to end before it is
// taken as not coming from ssh.
const hangupGrace = time.Second

// netSide is the tunnel as bridge copies through it; it remembers the
// first error of the tunnel's own side (not stdin's or stdout's).
type netSide struct {
	rw  io.ReadWriter
	mu  sync.Mutex
	err error
}

func (n *netSide) Read(p []byte) (int, error) {
	k, err := n.rw.Read(p)
	n.fail(err)
	return k, err
}

func (n *netSide) Write(p []byte) (int, error) {
	k, err := n.rw.Write(p)
	n.fail(err)
	return k, err
}

func (n *netSide) fail(err error) {
	if err == nil {
		return
	}
	n.mu.Lock()
	if n.err == nil {
		n.err = err
	}
	n.mu.Unlock()
}

func (n *netSide) failed() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.err
}

// directEndGrace is how long a direct connection that the far side closed
// (EOF) waits for ssh to end stdin: ssh that read the server's last bytes
// exits at once; ssh whose connection was cut in the middle waits for more.
const directEndGrace = 3 * time.Second

// directEnd reports how a direct connection ended when its TCP side
// stopped: stdout gone (ssh exited: netErr nil) or a clean end that ssh
// follows by closing stdin is not an error; a connection reset, timed out or
// closed under a running ssh (the VPN dropped) is a lost tunnel.
func directEnd(ctx context.Context, conn *tunnel.Conn, netErr error, inDone <-chan error) error {
	if netErr == nil {
		return nil
	}
	if errors.Is(netErr, io.EOF) {
		t := time.NewTimer(directEndGrace)
		defer t.Stop()
		select {
		case err := <-inDone:
			if err == nil {
				return nil
			}
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
	return directLost(conn, netErr)
}

// directLost is the error of a direct connection the network ended.
func directLost(conn *tunnel.Conn, netErr error) error {
	const hint = "connect again: auto falls back to Session Manager within the budget while the direct path does not answer"
	const msg = "direct connection to %s closed by the network (the VPN dropped, or the instance stopped?): the session ended; the next connect falls back within the budget"
	if errors.Is(netErr, io.EOF) {
		return exitcode.New(exitcode.TunnelLost, hint, msg, conn.Addr)
	}
	return exitcode.Wrap(netErr, exitcode.TunnelLost, hint, msg, conn.Addr)
}

// sessionEnd reports how the session ended when the agent side closed it
// (a stdout that is gone, ssh having exited, is not an error of ours). The
// service's reason (the instance stopped, a timeout) goes to notice: under
// ControlPersist it is all the user gets beside ssh's "Connection closed".
func sessionEnd(conn *tunnel.Conn, notice func(string, ...any)) error {
	err := conn.Err()
	var ce *datachannel.ClosedError
	if errors.As(err, &ce) {
		if ce.Output != "" {
			notice("session ended: %s", ce.Output)
		}
		return nil
	}
	return err
}

// stdStreams returns what bridge reads (stdin) and writes (stdout; only
// with sink, the Session Manager path): each through internal/stdpipe when
// it is a pipe or socket that is not also another standard stream (ssh's
// ProxyCommand pipes), so that no thread waits in a blocking read(2) or
// write(2) and the data channel's reader writes output without waking
// another goroutine (datachannel.Session.WriteTo); otherwise std.In and
// std.Out as they are. restore puts them back as they were.
func stdStreams(std IO, sink bool) (in io.Reader, out io.Writer, restore func()) {
	files := func(vs ...any) []*os.File {
		fs := []*os.File{}
		for _, v := range vs {
			if f, ok := v.(*os.File); ok {
				fs = append(fs, f)
			}
		}
		return fs
	}
	in, out = std.In, std.Out
	var opened []*stdpipe.File
	if f, ok := std.In.(*os.File); ok {
		if p, err := stdpipe.Open(f, files(os.Stdout, os.Stderr, std.Out, std.ErrOut)...); err == nil {
			in, opened = p, append(opened, p)
		}
	}
	if f, ok := std.Out.(*os.File); ok && sink {
		if p, err := stdpipe.Open(f, files(os.Stdin, os.Stderr, std.In, std.ErrOut)...); err == nil {
			out, opened = p, append(opened, p)
		}
	}
	return in, out, func() {
		for _, p := range opened {
			_ = p.Close()
		}
	}
}

// copyFlush is io.Copy with a buffer sized to the protocol's messages.
func copyFlush(dst io.Writer, src io.Reader) (int64, error) {
	buf := make([]byte, 32<<10)
	return io.CopyBuffer(dst, src, buf)
}
