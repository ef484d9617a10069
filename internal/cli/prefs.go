package cli

import (
	"errors"
	"fmt"
	stdio "io"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/spf13/cobra"

	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/prefs"
)

func init() { register(newPrefsCommand) }

func newPrefsCommand(io IO) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "prefs",
		Short: "Session Manager preferences (the " + prefs.DocumentName + " document of a region)",
	}
	cmd.AddCommand(newPrefsShowCommand(io), newPrefsChangeCommand(io, false), newPrefsChangeCommand(io, true))
	return cmd
}

func prefsStore(cmd *cobra.Command, af awsFlags) (prefs.Store, string, error) {
	cfg, err := af.load(cmd.Context(), nil)
	if err != nil {
		return prefs.Store{}, "", err
	}
	return prefs.Store{API: ssm.NewFromConfig(cfg)}, cfg.Region, nil
}

func newPrefsShowCommand(io IO) *cobra.Command {
	var af awsFlags
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Print the preferences in force (the document's default version)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, region, err := prefsStore(cmd, af)
			if err != nil {
				return err
			}
			cur, err := st.Get(cmd.Context())
			if err != nil {
				return err
			}
			switch {
			case !cur.Exists:
				fmt.Fprintf(io.ErrOut, "devgate: no preferences saved in %s yet; these are the defaults (`devgate prefs set` creates the document)\n", region)
				_, err = io.Out.Write(prefs.Default().Marshal())
			case cur.ParseErr != nil:
				fmt.Fprintf(io.ErrOut, "devgate: warning: the stored document (version %s) is not valid: %v\n", cur.Version, cur.ParseErr)
				_, err = fmt.Fprintln(io.Out, cur.Raw)
			default:
				fmt.Fprintf(io.ErrOut, "devgate: %s version %s in %s\n", prefs.DocumentName, cur.Version, region)
				_, err = io.Out.Write(cur.Doc.Marshal())
			}
			return err
		},
	}
	af.add(cmd)
	return cmd
}

// newPrefsChangeCommand builds `prefs set KEY=VALUE…` (edit the document in
// force) or `prefs apply FILE` (replace it): validate, diff, confirm, store.
func newPrefsChangeCommand(io IO, apply bool) *cobra.Command {
	var af awsFlags
	var yes, dryRun bool
	cmd := &cobra.Command{
		Use:   "set KEY=VALUE...",
		Short: "Change preferences (e.g. idleSessionTimeout=30 maxSessionDuration=480 shellProfile.linux='exec bash -l')",
		Args:  cobra.MinimumNArgs(1),
	}
	if apply {
		cmd.Use, cmd.Short, cmd.Args = "apply FILE", "Replace the preferences with a document from FILE (- for stdin, with --yes)", cobra.ExactArgs(1)
	} else {
		cmd.Long = "Keys: " + strings.Join(prefs.Keys(), ", ") + fmt.Sprintf(`.
idleSessionTimeout is %d-%d minutes, maxSessionDuration %d-%d minutes (empty: no limit);
the *Enabled keys are true or false; an empty value clears a string.
The edits are checked before anything is read from AWS, and applied together.`, prefs.IdleMin, prefs.IdleMax, prefs.MaxDurationMin, prefs.MaxDurMax)
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var want *prefs.Document
		if !apply {
			for _, a := range args { // a typo is refused before any AWS call
				if err := prefs.CheckEdit(a); err != nil {
					return prefsError(err)
				}
			}
		}
		if apply {
			var b []byte
			var err error
			if args[0] == "-" {
				if !yes && !dryRun {
					return exitcode.New(exitcode.Usage, "add --yes (stdin cannot also answer the confirmation)", "reading the document from stdin needs --yes")
				}
				b, err = stdio.ReadAll(io.In)
			} else {
				b, err = os.ReadFile(args[0])
			}
			if err != nil {
				return exitcode.Wrap(err, exitcode.LocalIO, "", "cannot read %s", args[0])
			}
			if want, err = prefs.Parse(b); err != nil {
				return exitcode.Wrap(err, exitcode.Usage, "see `devgate prefs show` for a valid document", "%s is not a valid preferences document", args[0])
			}
		}
		st, region, err := prefsStore(cmd, af)
		if err != nil {
			return err
		}
		cur, err := st.Get(cmd.Context())
		if err != nil {
			return err
		}
		var old *prefs.Document
		switch {
		case cur.Exists && cur.ParseErr == nil:
			old = cur.Doc
		case cur.Exists:
			fmt.Fprintf(io.ErrOut, "devgate: warning: the stored document is not valid (%v); it will be replaced\n", cur.ParseErr)
			old = &prefs.Document{}
		}
		if !apply {
			base := prefs.Default()
			if old != nil && cur.ParseErr == nil {
				c := *old
				base = &c
			}
			if err := base.Edit(args...); err != nil {
				return prefsError(err)
			}
			want = base
		}
		d := prefs.Diff(old, want)
		if cur.Exists && cur.ParseErr != nil {
			d = prefs.Diff(nil, want)
		}
		if d == "" {
			fmt.Fprintf(io.ErrOut, "devgate: the preferences in %s already say that; nothing changed\n", region)
			return nil
		}
		fmt.Fprint(io.Out, d)
		if dryRun {
			fmt.Fprintln(io.ErrOut, "devgate: --dry-run: nothing written")
			return nil
		}
		if !yes {
			ok, err := confirm(io, fmt.Sprintf("Apply to %s in %s?", prefs.DocumentName, region))
			if err != nil {
				return err
			}
			if !ok {
				return exitcode.New(exitcode.Declined, "run again and answer y, or pass --yes", "cancelled; nothing written")
			}
		}
		res, err := st.Put(cmd.Context(), cur, want)
		if err != nil {
			return err
		}
		if res.Created {
			fmt.Fprintf(io.ErrOut, "devgate: created %s in %s (version %s)\n", prefs.DocumentName, region, res.Version)
		} else {
			fmt.Fprintf(io.ErrOut, "devgate: %s in %s is now at version %s (the default)\n", prefs.DocumentName, region, res.Version)
		}
		return nil
	}
	af.add(cmd)
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show the diff only")
	return cmd
}

// prefsError classifies a refused `prefs set` edit (a *prefs.Error) with
// the hint its kind calls for: the valid keys for an unknown key, a valid
// edit close to the one given for a value out of range, the other key for
// one that needs it.
func prefsError(err error) error {
	var pe *prefs.Error
	if !errors.As(err, &pe) {
		return err
	}
	hint := ""
	switch pe.Kind {
	case prefs.KindUnknownKey:
		hint = "valid keys: " + strings.Join(prefs.Keys(), ", ")
	case prefs.KindSyntax:
		hint = "write KEY=VALUE, e.g. devgate prefs set idleSessionTimeout=30"
	case prefs.KindRequires:
		hint = fmt.Sprintf("set %s in the same command (devgate prefs set … %s=…)", pe.Needs, pe.Needs)
	case prefs.KindInvalid:
		if pe.Example != "" {
			hint = "e.g. devgate prefs set " + pe.Example
		} else {
			hint = "`devgate prefs set --help` lists the keys and their values"
		}
	}
	return exitcode.Wrap(err, exitcode.Usage, hint, "bad preference")
}
