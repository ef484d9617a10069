package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/devgate/devgate/internal/config"
	"github.com/devgate/devgate/internal/doctor"
	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/sshconfig"
	"github.com/devgate/devgate/internal/sshkey"
	"github.com/devgate/devgate/internal/vscode"
)

func init() { register(newDoctorCommand) }

func newDoctorCommand(io IO) *cobra.Command {
	var af awsFlags
	var asJSON bool
	var osUser, key, prefix, vpnProfile string
	var pf pathFlags
	cmd := &cobra.Command{
		Use:   "doctor [target]",
		Short: "Check everything devgate needs and say how to fix what is wrong",
		Long: `doctor runs each check and prints one line per check, ✓ or ✗ with the fix:
AWS credentials and identity, region, clock skew against AWS, the permissions
devgate needs (probed with harmless calls), and with a target: the instance,
its SSM agent, a test EC2 Instance Connect key push; locally: the ssh client
version, ssh -G <alias> resolving through the Include, ControlPath length,
key permissions, VS Code settings. Exits non-zero when any check fails.
Then the last failures recorded in the event log (in --json: entries named
"recent failure" with "info": true; they never make doctor fail).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target := ""
			if len(args) == 1 {
				target = args[0]
			}
			if vpnProfile == "" {
				vpnProfile = os.Getenv("DEVGATE_VPN_PROFILE")
			}
			results := runDoctor(cmd.Context(), af, target, osUser, key, prefix, directOptions{pf, vpnProfile})
			if asJSON {
				// The event log's recent failures ride along as info entries
				// (an unreadable log is one too).
				history, err := recentFailures(io.Events, target, time.Now())
				if err != nil {
					history = []doctor.Result{{Name: recentFailureName, Info: true, Detail: fmt.Sprintf("cannot read %s: %v", io.Events.Path(), err)}}
				}
				enc := json.NewEncoder(io.Out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(append(results, history...)); err != nil {
					return err
				}
			} else {
				for _, r := range results {
					mark := "✓"
					switch {
					case r.Skipped:
						mark = "–"
					case r.Info:
						mark = "·"
					case !r.OK:
						mark = "✗"
					}
					line := fmt.Sprintf("%s %s", mark, r.Name)
					if r.Detail != "" {
						line += ": " + r.Detail
					}
					fmt.Fprintln(io.Out, line)
					if !r.OK && r.Fix != "" {
						fmt.Fprintf(io.Out, "    fix: %s\n", r.Fix)
					}
				}
				printRecentFailures(io.Out, io.Events, target, time.Now())
			}
			if doctor.Failed(results) {
				n := 0
				for _, r := range results {
					if !r.OK && !r.Skipped && !r.Info {
						n++
					}
				}
				hint := "fix the ✗ lines above, then run `devgate doctor` again"
				if asJSON { // no ✗ lines on stdout: the failures are entries
					hint = "fix the entries with \"ok\": false (each says its \"fix\"), then run `devgate doctor` again"
				}
				return exitcode.New(exitcode.Generic, hint, "%d check(s) failed", n)
			}
			return nil
		},
	}
	af.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the results as JSON")
	cmd.Flags().StringVar(&osUser, "user", "", "OS user for the test key push (default $DEVGATE_USER, else devgate's config, else "+config.DefaultUser+")")
	cmd.Flags().StringVar(&key, "key", "", "private key (default ~/.ssh/devgate/id_ed25519)")
	addPrefixFlag(cmd, &prefix)
	cmd.Flags().StringVar(&vpnProfile, "vpn-profile", "", "your Client VPN profile (.ovpn from `devgate vpn profile`) whose certificate is checked (default $DEVGATE_VPN_PROFILE)")
	pf.add(cmd)
	return cmd
}

// directOptions select the direct-path checks of doctor.
type directOptions struct {
	flags   pathFlags
	profile string
}

func runDoctor(ctx context.Context, af awsFlags, target, osUser, key, prefix string, do directOptions) []doctor.Result {
	home, _, err := homeDir()
	if err != nil {
		return []doctor.Result{{Name: "home directory", Detail: err.Error(), Fix: "set HOME"}}
	}
	t, err := resolveTarget(target, config.Settings{User: osUser, Profile: af.profile, Region: af.region, Path: do.flags.path}, prefix)
	if err != nil {
		return []doctor.Result{{Name: "devgate config", Detail: err.Error(), Fix: exitcode.HintOf(err)}}
	}
	if key == "" {
		key = sshkey.DefaultPath(home)
	}
	pub := ""
	if p, err := sshkey.LoadPublic(key); err == nil {
		pub = p.AuthorizedKey
	}

	var checks []doctor.Check
	cfg, cfgErr := t.aws(ctx, nil)
	if cfgErr != nil {
		checks = append(checks, doctor.Check{Name: "AWS configuration", Run: func(context.Context) doctor.Result {
			return doctor.Result{Detail: cfgErr.Error(), Fix: exitcode.HintOf(cfgErr)}
		}})
	} else {
		sdk := doctor.NewSDK(cfg, t.Resolve)
		checks = append(checks, doctor.AWSChecks(sdk, time.Now, target, t.User, pub)...)
		if target != "" {
			path, budget, err := do.flags.resolve(t.Path)
			if err != nil {
				return []doctor.Result{{Name: "--path", Detail: err.Error(), Fix: exitcode.HintOf(err)}}
			}
			lookup := func(ctx context.Context) (doctor.DirectTarget, error) { return sdk.DirectTarget(ctx, target) }
			checks = append(checks, doctor.DirectChecks(path, lookup, do.profile, time.Now, budget)...)
		}
	}

	checks = append(checks, doctor.SSHVersion("ssh"), doctor.KeyPermissions(key))
	alias := target
	managed, _ := os.ReadFile(sshconfig.ManagedPath(home))
	aliases := sshconfig.ManagedAliases(managed)
	if alias == "" && len(aliases) > 0 {
		alias = aliases[0]
	}
	if alias == "" {
		alias = t.Prefix + "-example"
	}
	// DEVGATE_SSH_CONFIG names the ssh config to check (the lab's D/env sets it); default ~/.ssh/config.
	// An alias `devgate setup` wrote is checked where `ssh <alias>` finds it, ~/.ssh/config: the lab's
	// env stays set in the shell where a user then runs setup and `devgate doctor devbox-gpu1`.
	sshCfg := os.Getenv("DEVGATE_SSH_CONFIG")
	if sshCfg == "" || slices.Contains(aliases, alias) {
		sshCfg = sshconfig.UserConfigPath(home)
	}
	sc := &doctor.SSHConfig{Alias: alias, GOOS: runtime.GOOS, ConfigFile: sshCfg}
	checks = append(checks, sc.Resolves(), sc.ProxyCommandBinary(), sc.ControlPathLength())
	var products []vscode.Product // only the installed ones (their config directory exists)
	for _, p := range vscode.SettingsPaths(runtime.GOOS, home, os.Getenv) {
		if _, err := os.Stat(filepath.Dir(filepath.Dir(p.Path))); err == nil {
			products = append(products, p)
		}
	}
	checks = append(checks, doctor.VSCodeSettings(products, os.ReadFile, vscode.DefaultConnectTimeout, aliases))
	return doctor.Run(ctx, checks)
}
