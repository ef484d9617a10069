package cli

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/devgate/devgate/internal/datachannel"
	"github.com/devgate/devgate/internal/forward"
	"github.com/devgate/devgate/internal/tunnel"
)

func init() { register(newForwardCommand) }

func newForwardCommand(io IO) *cobra.Command {
	var af awsFlags
	var bind, prefix, logFile, reason string
	var noStart, auto, verbose, quiet bool
	var timeout, resumeTimeout, liveness time.Duration
	var sessions int
	cmd := &cobra.Command{
		Use:   "forward <target> SPEC...",
		Short: "Forward local ports to ports of an instance (Jupyter, TensorBoard, dashboards)",
		Long: `forward listens on local ports and carries each connection to a port of the instance
(or of a host the instance reaches) through Session Manager. SPEC is 8888 (the same port
locally), 18888:8888 (local:remote) or 5432:db.internal:5432 (local:host:remote).
Parallel connections share one session per port when the SSM agent supports it. Dropped
connections resume; a session that ends (idle timeout, instance restart) is replaced on
the next connection. Ctrl-C ends the sessions. stdout gets one line per port.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			target := args[0]
			var specs []forward.Spec
			for _, a := range args[1:] {
				sp, err := forward.ParseSpec(a)
				if err != nil {
					return err
				}
				specs = append(specs, sp)
			}
			log, closeLog, err := connectLogger(io, logFile, verbose)
			if err != nil {
				return err
			}
			defer closeLog()
			var outMu sync.Mutex
			say := func(format string, a ...any) {
				log.Info(fmt.Sprintf(format, a...))
				outMu.Lock()
				fmt.Fprintf(io.ErrOut, "devgate: "+format+"\n", a...)
				outMu.Unlock()
			}
			progress := func(format string, a ...any) {
				if !quiet {
					say(format, a...)
				} else {
					log.Info(fmt.Sprintf(format, a...))
				}
			}
			// Bind every port first: a port in use fails before anything starts.
			var fws []*forward.Forwarder
			defer func() {
				for _, fw := range fws {
					fw.Close()
				}
			}()
			t, err := resolveTarget(target, af.settings(), prefix)
			if err != nil {
				return err
			}
			cfg, err := t.aws(ctx, log)
			if err != nil {
				return err
			}
			state := stateDir()
			for _, sp := range specs {
				o := tunnel.Options{Target: target, Port: sp.RemotePort, Host: sp.Host, NoStart: noStart,
					Timeout: timeout, ResumeTimeout: resumeTimeout, Liveness: liveness, Resolve: t.Resolve, Reason: sessionReason(reason, "forward"),
					StateDir: state, Progress: progress, Logger: log}
				remote := sp.Remote()
				o.OnReconnect = func(err error) {
					if err != nil {
						progress("forward %s: connection lost (%v); resuming", remote, err)
					} else {
						progress("forward %s: resumed", remote)
					}
				}
				fw, err := forward.Listen(forward.Options{Spec: sp, Bind: bind, Auto: auto, Notify: say, Logger: log, Sessions: sessions,
					Open: func(ctx context.Context) (*tunnel.Conn, error) { return tunnel.OpenSession(ctx, cfg, o) }})
				if err != nil {
					return err
				}
				fws = append(fws, fw)
			}
			// The first session starts the instance if needed; the others follow at once.
			if err := fws[0].Connect(ctx); err != nil {
				return err
			}
			errs := make([]error, len(fws))
			var wg sync.WaitGroup
			for i, fw := range fws[1:] {
				wg.Go(func() { errs[i+1] = fw.Connect(ctx) })
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					return err
				}
			}
			for _, fw := range fws {
				sp := fw.Spec()
				host := net.JoinHostPort(fw.Addr().IP.String(), strconv.Itoa(fw.Addr().Port))
				to := target + ":" + strconv.Itoa(sp.RemotePort)
				if sp.Host != "" {
					to = target + " -> " + sp.Remote()
				}
				note := ""
				if sp.LocalPort != 0 && fw.Addr().Port != sp.LocalPort {
					note = " (local port " + strconv.Itoa(sp.LocalPort) + " was in use)"
				}
				fmt.Fprintf(io.Out, "http://%s -> %s%s\n", host, to, note)
			}
			progress("forwarding; Ctrl-C to stop")
			serveErrs := make([]error, len(fws))
			for i, fw := range fws {
				wg.Go(func() { serveErrs[i] = fw.Serve(ctx) })
			}
			wg.Wait()
			fws = nil
			for _, err := range serveErrs {
				if err != nil {
					return err
				}
			}
			progress("sessions terminated")
			return nil
		},
	}
	af.add(cmd)
	f := cmd.Flags()
	f.StringVar(&bind, "bind", "127.0.0.1", "local address to listen on")
	f.BoolVar(&auto, "auto", false, "pick a free local port when one is in use (printed)")
	f.IntVar(&sessions, "sessions", 1, "most sessions per port: parallel connections that find every session busy open another (each session is paced by the agent to about 1 MB/s)")
	f.BoolVar(&noStart, "no-start", false, "fail instead of starting a stopped instance")
	f.DurationVar(&timeout, "timeout", 10*time.Minute, "bound on waiting for the instance, its agent and each session")
	f.DurationVar(&resumeTimeout, "resume-timeout", 2*time.Minute, "give up on a dropped data channel after this; the next connection opens a new session")
	f.DurationVar(&liveness, "liveness", datachannel.DefaultLiveness, "treat a data channel that sends nothing (no data, no pong) for this long as dropped, and resume it")
	f.StringVar(&logFile, "log-file", "", "append a log to this file (0600)")
	f.BoolVarP(&verbose, "verbose", "v", false, "debug log (to --log-file, else stderr)")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress lines on stderr (errors and connection events still)")
	f.StringVar(&reason, "reason", "", "why the session is opened, recorded by Session Manager and CloudTrail (default: devgate <command> by <local user>)")
	addPrefixFlag(cmd, &prefix)
	return cmd
}
