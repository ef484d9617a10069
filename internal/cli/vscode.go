package cli

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/sshconfig"
	"github.com/devgate/devgate/internal/vscode"
)

func init() { register(newVSCodeCommand) }

func newVSCodeCommand(io IO) *cobra.Command {
	var write bool
	var timeout int
	cmd := &cobra.Command{
		Use:   "vscode",
		Short: "Merge Remote-SSH settings for devgate's hosts into VS Code's settings.json",
		Long: `vscode shows the change to the user settings.json of each installed VS Code style
editor (Code, Code - Insiders, VSCodium, Cursor, Windsurf; under $VSCODE_APPDATA, else
%APPDATA%, ~/Library/Application Support or $XDG_CONFIG_HOME/~/.config) that lets Remote-SSH reach devgate's hosts: remote.SSH.connectTimeout
long enough for a cold start, and remote.SSH.remotePlatform "linux" for each alias in
~/.ssh/devgate/config (run ` + "`devgate setup`" + ` first). Comments and formatting are kept.
--write applies it, after a backup.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			home, _, err := homeDir()
			if err != nil {
				return err
			}
			managed, err := os.ReadFile(sshconfig.ManagedPath(home))
			if errors.Is(err, os.ErrNotExist) {
				return exitcode.New(exitcode.Config, "run `devgate setup` first", "%s not found", sshconfig.ManagedPath(home))
			} else if err != nil {
				return exitcode.Wrap(err, exitcode.LocalIO, "", "cannot read %s", sshconfig.ManagedPath(home))
			}
			aliases := sshconfig.ManagedAliases(managed)
			products := vscode.Installed(vscode.SettingsPaths(runtime.GOOS, home, os.Getenv))
			changes, err := vscode.Plan(products, timeout, aliases)
			if err != nil {
				return err
			}
			pending := 0
			for _, c := range changes {
				if c.Changed() {
					pending++
					fmt.Fprint(io.Out, c.Diff())
				}
			}
			if pending == 0 {
				fmt.Fprintln(io.ErrOut, "devgate: VS Code settings already up to date; nothing changed")
				return nil
			}
			if !write {
				fmt.Fprintln(io.ErrOut, "devgate: run with --write to apply")
				return nil
			}
			if err := applyChanges(io.ErrOut, changes, time.Now()); err != nil {
				return err
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&write, "write", false, "apply the change (default: only show the diff)")
	cmd.Flags().IntVar(&timeout, "connect-timeout", vscode.DefaultConnectTimeout, "remote.SSH.connectTimeout in seconds (raised, never lowered)")
	return cmd
}
