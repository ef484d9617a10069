package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/devgate/devgate/internal/config"
	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/shell"
	"github.com/devgate/devgate/internal/tunnel"
)

func init() { register(newShellCommand) }

// sessionFlags are the flags shell and exec share.
type sessionFlags struct {
	af                     awsFlags
	document, reason       string
	prefix, logFile        string
	noStart, quiet, verbse bool
	timeout, resumeTimeout time.Duration
}

func (f *sessionFlags) add(cmd *cobra.Command, docHelp string) {
	f.af.add(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.document, "document", "", docHelp)
	fl.StringVar(&f.reason, "reason", "", "reason recorded with the session (StartSession Reason, at most 256 characters)")
	fl.BoolVar(&f.noStart, "no-start", false, "fail instead of starting a stopped instance")
	fl.DurationVar(&f.timeout, "timeout", 10*time.Minute, "bound on waiting for the instance, its agent and the session")
	fl.DurationVar(&f.resumeTimeout, "resume-timeout", 2*time.Minute, "give up when a dropped data channel cannot be resumed within this")
	fl.StringVar(&f.logFile, "log-file", "", "append a log to this file (0600)")
	fl.BoolVarP(&f.verbse, "verbose", "v", false, "debug log (to --log-file, else stderr)")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "no progress lines on stderr (errors still)")
	addPrefixFlag(cmd, &f.prefix)
}

// options resolves the target's settings (internal/config) and builds the
// tunnel options and the AWS config; progress lines end in \r\n because the
// terminal may be in raw mode when they are printed.
func (f *sessionFlags) options(ctx context.Context, io IO, name string) (tunnel.Options, aws.Config, func(), error) {
	log, closeLog, err := connectLogger(io, f.logFile, f.verbse)
	if err != nil {
		return tunnel.Options{}, aws.Config{}, nil, err
	}
	t, err := resolveTarget(name, config.Settings{Profile: f.af.profile, Region: f.af.region}, f.prefix)
	if err != nil {
		closeLog()
		return tunnel.Options{}, aws.Config{}, nil, err
	}
	cfg, err := t.aws(ctx, log)
	if err != nil {
		closeLog()
		return tunnel.Options{}, aws.Config{}, nil, err
	}
	progress := func(format string, a ...any) {
		log.Info(fmt.Sprintf(format, a...))
		if !f.quiet {
			fmt.Fprintf(io.ErrOut, "devgate: "+format+"\r\n", a...)
		}
	}
	o := tunnel.Options{Target: name, Document: f.document, Reason: f.reason, NoStart: f.noStart,
		Timeout: f.timeout, ResumeTimeout: f.resumeTimeout, Resolve: t.Resolve, Progress: progress, Logger: log,
		StateDir: stateDir(),
		OnReconnect: func(err error) {
			if err != nil {
				progress("connection lost (%v); resuming", err)
			} else {
				progress("resumed")
			}
		}}
	return o, cfg, closeLog, nil
}

func newShellCommand(io IO) *cobra.Command {
	var sf sessionFlags
	var params []string
	cmd := &cobra.Command{
		Use:   "shell <target>",
		Short: "Open a Session Manager shell on an instance (no sshd, keys or EC2 Instance Connect)",
		Long: `shell opens a Session Manager shell: the Standard_Stream document SSM-SessionManagerRunShell
(your Session Manager preferences: run-as user, shell profile, idle timeout, KMS encryption),
or an InteractiveCommands document given with --document and --parameters. It starts a
stopped instance and waits for its agent like connect, and needs neither sshd nor a key push,
so it also reaches hybrid mi- managed nodes. The terminal is raw: Ctrl-C and Ctrl-Z go to the
remote shell. The session ends when the shell exits or devgate gets SIGHUP, SIGTERM or SIGINT.
devgate exits with the remote exit status when the agent reports one (the real agent does so
only for NonInteractiveCommands sessions; a shell's exit gives 0).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// SignalContext (main) cancels ctx on SIGHUP (the terminal went away),
			// SIGTERM and SIGINT (from kill: Ctrl-C on a raw terminal is a key for
			// the remote shell); the session then ends with TerminateSession.
			ctx := cmd.Context()
			p, err := parseParameters(params)
			if err != nil {
				return err
			}
			o, cfg, closeLog, err := sf.options(ctx, io, args[0])
			if err != nil {
				return err
			}
			defer closeLog()
			o.Parameters = p
			t := shell.Terminal{In: io.In, Out: io.Out, Fd: -1}
			if f, ok := io.In.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				t.Fd = int(f.Fd())
			}
			ended, err := shell.Run(ctx, cfg, o, t)
			if ended != "" {
				o.Progress("session ended: %s", ended)
			}
			if err == nil && ctx.Err() != nil {
				o.Progress("session terminated")
			}
			return err
		},
	}
	sf.add(cmd, "session document: "+tunnel.DocShell+" (default) or an InteractiveCommands document")
	cmd.Flags().StringArrayVar(&params, "parameters", nil, "document parameter name=value (repeatable; a name given twice makes a list)")
	return cmd
}

// parseParameters turns name=value flags into StartSession Parameters.
func parseParameters(kv []string) (map[string][]string, error) {
	if len(kv) == 0 {
		return nil, nil
	}
	out := map[string][]string{}
	for _, s := range kv {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, exitcode.New(exitcode.Usage, "--parameters command='nvidia-smi -l'", "--parameters %q is not name=value", s)
		}
		out[k] = append(out[k], v)
	}
	return out, nil
}
