package cli

import (
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/devgate/devgate/internal/cmdargs"
	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/shell"
)

func init() { register(newExecCommand) }

func newExecCommand(io IO) *cobra.Command {
	var sf sessionFlags
	cmd := &cobra.Command{
		Use:   "exec <target> -- CMD [ARGS...]",
		Short: "Run one command on an instance without ssh and exit with its status",
		Long: `exec runs one command through Session Manager, without sshd, keys or EC2 Instance Connect
(hybrid mi- managed nodes included). It uses a NonInteractiveCommands session document,
` + shell.ExecDocument + `, which it creates on first use (ssm:CreateDocument): the agent then sends
stdout and stderr apart and reports the exit status. Output is streamed whole (no size limit).
stdin is passed to the command when it is not a terminal, and its end reaches the command;
from a terminal the command reads /dev/null. There is no pty: use devgate shell for
interactive programs.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 1 {
				return exitcode.New(exitcode.Usage, "usage: "+cmdargs.UsageLine(cmd), "put -- between the target and the command")
			}
			ctx := cmd.Context() // cancelled on SIGHUP, SIGTERM, SIGINT (SignalContext)
			o, cfg, closeLog, err := sf.options(ctx, io, args[0])
			if err != nil {
				return err
			}
			defer closeLog()
			stdin := io.In
			if f, ok := io.In.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				stdin = nil
			}
			err = shell.Exec(ctx, cfg, o, args[1:], stdin, io.Out, io.ErrOut)
			if err != nil && ctx.Err() != nil {
				o.Progress("session terminated")
				return exitcode.Wrap(err, exitcode.Interrupted, "", "interrupted")
			}
			return err
		},
	}
	sf.add(cmd, "session document (default "+shell.ExecDocument+", created on first use): a NonInteractiveCommands document with a command parameter and linux.separateOutputStream")
	return cmd
}
