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
}

// StdIO returns the process's standard streams, the event log in devgate's
// state directory and /dev/tty.
func StdIO() IO {
	return IO{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr, Events: eventlog.Open(stateDir()),
		ErrHidden: stderrHidden(os.Stderr), Terminal: openTerminal}
}

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
// one place where errors become messages and exit codes, and where every
// failure is recorded in the event log with its exit code and hint.
func Main(ctx context.Context, args []string, io IO) int {
	errOut := io.ErrOut
	var h *hiddenStderr
	if io.ErrHidden {
		h = newHiddenStderr(io.Events, io.Terminal)
		defer h.close()
		io.ErrOut, io.settle, errOut = h, h.settle, h.final()
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
	if hint != "" {
		fmt.Fprintf(errOut, "devgate: hint: %s\n", hint)
	}
	code := exitcode.Code(err)
	var e *exitcode.Error
	if !errors.As(err, &e) && isUsage(err) {
		code = int(exitcode.Usage)
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

// usageError marks flag and argument errors found by cobra.
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func isUsage(err error) bool {
	var u usageError
	return errors.As(err, &u)
}
