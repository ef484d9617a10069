// Package cli builds devgate's command tree: one file per command, flags in,
// calls out. No AWS or protocol logic lives here; this is the only package
// that decides what the user sees on stdout and stderr.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/devgate/devgate/internal/cmdargs"
	"github.com/devgate/devgate/internal/eventlog"
	"github.com/devgate/devgate/internal/exitcode"
)

// IO is where commands read and write. Tests substitute buffers.
type IO struct {
	In     io.Reader
	Out    io.Writer // stdout: data only (in connect, the SSH stream)
	ErrOut io.Writer // stderr: progress, logs, errors
	// Events records every failure (and progress nobody could see); nil: none.
	Events *eventlog.Log
	// ErrHidden says ErrOut is /dev/null (ssh's ControlPersist): Main then
	// sends messages to Terminal, or to Events when there is no terminal.
	ErrHidden bool
	// Terminal opens the controlling terminal (nil: none).
	Terminal func() (io.WriteCloser, error)

	// settle, when set, tells Main's hidden-stderr writer that the command
	// is running (the terminal belongs to ssh's session from now on).
	settle func()
	// notice, when set, is where a settled command writes why its session
	// ended under a running ssh (hiddenStderr.notice); nil: ErrOut.
	notice io.Writer
}

// StdIO returns the process's standard streams, the event log in devgate's
// state directory and /dev/tty.
func StdIO() IO {
	return IO{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr, Events: eventlog.Open(eventsDir()),
		ErrHidden: stderrHidden(os.Stderr), Terminal: openTerminal}
}

// eventsDir is where the event log goes: devgate's state directory, or ""
// (no log) when the home directory does not exist. Writing the log would
// otherwise create a mistyped HOME, which every command refuses (homeDir).
func eventsDir() string {
	if _, _, err := homeDir(); err != nil {
		return ""
	}
	return stateDir()
}

// NewRoot builds the devgate command tree.
func NewRoot(io IO) *cobra.Command {
	root := &cobra.Command{
		Use:           "devgate",
		Short:         "Make a private EC2 devbox feel local, over AWS Session Manager",
		SilenceErrors: true,
		SilenceUsage:  true,
		Version:       versionString(),
	}
	root.SetIn(io.In)
	// Help, usage, --version and completion scripts go to stdout (`devgate --help | less`,
	// `source <(devgate completion bash)`); connect's data path writes to io.Out itself
	// and nothing else in connect does. Errors go to stderr.
	root.SetOut(io.Out)
	root.SetErr(io.ErrOut)
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err, c} })
	for _, add := range commands {
		root.AddCommand(add(io))
	}
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	conventions(root, io)
	return root
}

// conventions applies what every command shares, after the tree is built:
// usage errors (wrong argument count, unknown subcommand) are marked as such,
// a command group run bare prints its help and rejects unknown subcommands,
// and examples and target completion are filled in where a command file
// did not set its own.
func conventions(c *cobra.Command, io IO) {
	switch {
	case c.HasSubCommands() && c.Run == nil && c.RunE == nil:
		c.Args = cobra.ArbitraryArgs
		c.RunE = func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
				if c.SuggestionsMinimumDistance <= 0 {
					c.SuggestionsMinimumDistance = 2
				}
				if s := c.SuggestionsFor(args[0]); len(s) > 0 {
					msg += fmt.Sprintf(" (did you mean %q?)", s[0])
				}
				return usageError{errors.New(msg), c}
			}
			return c.Help()
		}
	case c.Args != nil:
		check := c.Args
		c.Args = func(c *cobra.Command, args []string) error {
			if err := cmdargs.Check(c, check, args); err != nil {
				return usageError{err, c}
			}
			return nil
		}
	}
	if c.Example == "" {
		c.Example = examples[strings.TrimPrefix(c.CommandPath(), "devgate ")]
	}
	if c.ValidArgsFunction == nil && c.Parent() != nil && c.Parent().Parent() == nil {
		switch {
		case c.Name() == "cp":
			c.ValidArgsFunction = completeCp
		case completesTarget[c.Name()]:
			c.ValidArgsFunction = completeTarget
		}
	}
	for _, sub := range c.Commands() {
		conventions(sub, io)
	}
}

// commands lists the constructors of the subcommands; each command file
// registers itself in an init function so that files do not touch one another.
var commands []func(IO) *cobra.Command

func register(c func(IO) *cobra.Command) { commands = append(commands, c) }

// Main runs devgate with args and returns the process exit code. It is the
// one place where errors become messages and exit codes, and where every
// failure is recorded in the event log with its exit code and hint.
func Main(ctx context.Context, args []string, io IO) int {
	errOut := io.ErrOut
	var h *hiddenStderr
	if io.ErrHidden {
		h = newHiddenStderr(io.Events, io.Terminal)
		defer h.close()
		io.ErrOut, io.settle, io.notice, errOut = h, h.settle, h.notice(), h.final()
	}
	root := NewRoot(io)
	command, target := commandOf(root, args)
	if h != nil {
		h.command, h.target = command, target
	}
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var st *exitcode.Status
	if errors.As(err, &st) { // a remote command's exit status, passed on silently
		return st.Code
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		fmt.Fprintln(errOut, "devgate: interrupted")
		return int(exitcode.Interrupted)
	}
	fmt.Fprintf(errOut, "devgate: error: %v\n", err)
	hint := exitcode.HintOf(err)
	code := exitcode.Code(err)
	var e *exitcode.Error
	var u usageError
	if !errors.As(err, &e) && errors.As(err, &u) {
		hint = fmt.Sprintf("run `%s --help` for usage and examples", u.cmd.CommandPath())
		var ae *cmdargs.Error
		if errors.As(err, &ae) {
			hint = fmt.Sprintf("usage: %s (`%s --help` has examples)", ae.Usage, u.cmd.CommandPath())
		}
		code = int(exitcode.Usage)
	}
	if hint != "" {
		fmt.Fprintf(errOut, "devgate: hint: %s\n", hint)
	}
	if command != "doctor" { // doctor reports its own findings; its log would only echo them
		_ = io.Events.Append(eventlog.Event{Kind: eventlog.KindFailure, Command: command, Target: target,
			Code: code, Message: err.Error(), Hint: hint})
	}
	return code
}

// commandOf names the subcommand args run and its first argument (the
// target of connect, forward, start, …), for the event log.
func commandOf(root *cobra.Command, args []string) (command, target string) {
	c, rest, err := root.Find(args)
	if err != nil || c == root {
		return "", ""
	}
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" {
			if i+1 < len(rest) {
				return c.Name(), rest[i+1]
			}
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			return c.Name(), a
		}
		if strings.Contains(a, "=") {
			continue
		}
		name := strings.TrimLeft(a, "-")
		f := c.Flags().Lookup(name)
		if f == nil && len(name) == 1 {
			f = c.Flags().ShorthandLookup(name)
		}
		if f != nil && f.NoOptDefVal == "" {
			i++ // the flag's value
		}
	}
	return c.Name(), ""
}

// usageError marks flag and argument errors found by cobra, and the command
// they belong to (for the hint).
type usageError struct {
	error
	cmd *cobra.Command
}

func (u usageError) Unwrap() error { return u.error }
