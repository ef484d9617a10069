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

	"github.com/devgate/devgate/internal/exitcode"
)

// IO is where commands read and write. Tests substitute buffers.
type IO struct {
	In     io.Reader
	Out    io.Writer // stdout: data only (in connect, the SSH stream)
	ErrOut io.Writer // stderr: progress, logs, errors
}

// StdIO returns the process's standard streams.
func StdIO() IO { return IO{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr} }

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
			if err := check(c, args); err != nil {
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
// one place where errors become messages and exit codes.
func Main(ctx context.Context, args []string, io IO) int {
	root := NewRoot(io)
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
		fmt.Fprintln(io.ErrOut, "devgate: interrupted")
		return int(exitcode.Interrupted)
	}
	fmt.Fprintf(io.ErrOut, "devgate: error: %v\n", err)
	var e *exitcode.Error
	var u usageError
	switch {
	case errors.As(err, &e):
		if e.Hint != "" {
			fmt.Fprintf(io.ErrOut, "devgate: hint: %s\n", e.Hint)
		}
		return int(e.Class)
	case errors.As(err, &u):
		fmt.Fprintf(io.ErrOut, "devgate: hint: run `%s --help` for usage and examples\n", u.cmd.CommandPath())
		return int(exitcode.Usage)
	}
	return exitcode.Code(err)
}

// usageError marks flag and argument errors found by cobra, and the command
// they belong to (for the hint).
type usageError struct {
	error
	cmd *cobra.Command
}

func (u usageError) Unwrap() error { return u.error }
