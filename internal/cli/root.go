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

// Version is set by the linker (-ldflags "-X github.com/devgate/devgate/internal/cli.Version=…").
var Version = "dev"

// NewRoot builds the devgate command tree.
func NewRoot(io IO) *cobra.Command {
	root := &cobra.Command{
		Use:           "devgate",
		Short:         "Make a private EC2 devbox feel local, over AWS Session Manager",
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetIn(io.In)
	root.SetOut(io.ErrOut) // help and usage go to stderr; stdout stays for data
	root.SetErr(io.ErrOut)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	for _, add := range commands {
		root.AddCommand(add(io))
	}
	return root
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
	if h := exitcode.HintOf(err); h != "" {
		fmt.Fprintf(io.ErrOut, "devgate: hint: %s\n", h)
	}
	var e *exitcode.Error
	if !errors.As(err, &e) && isUsage(err) {
		return int(exitcode.Usage)
	}
	return exitcode.Code(err)
}

// usageError marks flag and argument errors found by cobra.
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func isUsage(err error) bool {
	var u usageError
	return errors.As(err, &u)
}
