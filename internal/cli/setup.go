package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	stdio "io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/devgate/devgate/internal/awsapi"
	"github.com/devgate/devgate/internal/config"
	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/osuser"
	"github.com/devgate/devgate/internal/shquote"
	"github.com/devgate/devgate/internal/sshconfig"
	"github.com/devgate/devgate/internal/sshkey"
)

func init() { register(newSetupCommand) }

type setupFlags struct {
	profile, region, user, prefix, key string
	dryRun, yes, noInventory, remove   bool
}

func newSetupCommand(io IO) *cobra.Command {
	var f setupFlags
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Create devgate's key and ssh config so that `ssh <prefix>-<name>` reaches your devboxes",
		Long: `setup creates devgate's key pair (~/.ssh/devgate/id_ed25519) unless one exists, lists the
instances of one account and region (--profile, --region) and records them under an alias
prefix (--prefix) in devgate's config; from that config it writes the managed ssh config
~/.ssh/devgate/config: one "Match final host" block per instance (its OS user, a
ProxyCommand with its profile and region), one for <prefix>-* (instances not listed yet),
one for i-*,mi-* (instance ids), and the shared options (pinned host keys, ControlMaster,
ControlPersist). It adds one Include at the TOP of ~/.ssh/config; "Match final" blocks are
read after your whole config, so your own settings there (above or below it) still win.

Run it again for another account, region or prefix: those hosts are added beside the
first ones. --remove takes a prefix's hosts away (only those of --profile/--region when
given). The OS user of each host is its devgate:user tag, else its image's default user
(Ubuntu: ubuntu, Amazon Linux: ec2-user, Debian: admin, …), else --user / $DEVGATE_USER
/ the config's default (ec2-user); --user or $DEVGATE_USER given explicitly applies to
every host of the run.

It shows a unified diff and asks before writing (--yes skips the question, --dry-run
only shows), backs up every file it changes, and changes nothing when run twice.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSetup(cmd.Context(), io, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.profile, "profile", "", "AWS profile of this set of hosts, written into their ProxyCommand (default: $AWS_PROFILE, else the SDK's default chain)")
	fl.StringVar(&f.region, "region", "", "AWS region of this set of hosts, written into their ProxyCommand (default: from the profile/environment)")
	fl.StringVar(&f.user, "user", "", "OS user for every host of this run (default: per host: tag devgate:user, else the image's user, else $DEVGATE_USER / the config's / ec2-user)")
	fl.StringVar(&f.prefix, "prefix", "", "alias prefix: hosts are <prefix>-<Name tag> (default $DEVGATE_PREFIX, else the config's, else devbox)")
	fl.StringVar(&f.key, "key", "", "private key to use (default ~/.ssh/devgate/id_ed25519, created if missing)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "show the diff and write nothing")
	fl.BoolVar(&f.yes, "yes", false, "write without asking")
	fl.BoolVar(&f.noInventory, "no-inventory", false, "do not list instances (only the <prefix>-* block)")
	fl.BoolVar(&f.remove, "remove", false, "remove the hosts of --prefix (and of --profile/--region when given) instead of adding")
	return cmd
}

// homeDir returns the home directory and whether ssh expands "~" to it (ssh
// uses the passwd entry, not $HOME, so a HOME override gets absolute paths).
func homeDir() (home string, tilde bool, err error) {
	home, err = os.UserHomeDir()
	if err != nil {
		return "", false, exitcode.Wrap(err, exitcode.LocalIO, "set HOME", "cannot find the home directory")
	}
	// A HOME that is not there is a mistake in the environment (a typo, a
	// container without its volume): creating it would hide keys and
	// known_hosts where nobody looks.
	if fi, err := os.Stat(home); err != nil || !fi.IsDir() {
		if err == nil {
			err = fmt.Errorf("%s is not a directory", home)
		}
		return "", false, exitcode.Wrap(err, exitcode.Config, "set HOME to your home directory", "the home directory %s does not exist", home)
	}
	if u, err := user.Current(); err == nil && filepath.Clean(u.HomeDir) == filepath.Clean(home) {
		tilde = true
	}
	if runtime.GOOS == "windows" {
		tilde = true // Windows OpenSSH expands ~ to %USERPROFILE%
	}
	return home, tilde, nil
}

// devgateBinary is the path of devgate as the user installed it: the path it
// was run by (a Homebrew/nix/scoop symlink stays a symlink, so upgrades do not
// break the ProxyCommand), found on PATH when run by its bare name. Only when
// neither is known, the running executable.
func devgateBinary() (string, error) {
	arg0 := os.Args[0]
	if strings.ContainsRune(arg0, '/') || strings.ContainsRune(arg0, filepath.Separator) {
		if abs, err := filepath.Abs(arg0); err == nil {
			if _, err := os.Stat(abs); err == nil {
				return abs, nil
			}
		}
	} else if p, err := exec.LookPath(arg0); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs, nil
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return "", exitcode.Wrap(err, exitcode.LocalIO, "run devgate by its full path", "cannot find devgate's own path")
	}
	return filepath.Abs(exe)
}

func runSetup(ctx context.Context, io IO, f setupFlags) error {
	home, tilde, err := homeDir()
	if err != nil {
		return err
	}
	bin, err := devgateBinary()
	if err != nil {
		return err
	}
	keyPath := f.key
	if keyPath == "" {
		keyPath = sshkey.DefaultPath(home)
	} else if keyPath, err = filepath.Abs(keyPath); err != nil {
		return exitcode.Wrap(err, exitcode.Usage, "", "bad --key")
	}
	cf, cfPath, err := loadConfig()
	if err != nil {
		return err
	}
	if cfPath == "" {
		return exitcode.New(exitcode.Config, "set DEVGATE_CONFIG to a file path", "no user config directory on this system")
	}
	r := cf.Resolve("", config.Settings{Profile: f.profile, Region: f.region, User: f.user}, f.prefix, os.Getenv)
	prefix := r.Prefix
	if err := config.CheckPrefix(prefix); err != nil {
		return exitcode.Wrap(err, exitcode.Usage, "use letters, digits, '-', '_' or '.'", "bad --prefix")
	}
	userForced := r.From["user"] == config.FromFlag || r.From["user"] == config.FromEnv

	if f.remove {
		n := cf.RemoveSet(prefix, f.profile, f.region)
		if n == 0 && !cf.HasPrefix(prefix) {
			return exitcode.New(exitcode.NotFound, "see the hosts in "+cfPath, "no hosts with prefix %q to remove", prefix)
		}
		fmt.Fprintf(io.ErrOut, "devgate: removing %d host(s) with prefix %s\n", n, prefix)
	} else {
		profile, region := r.Profile, r.Region
		var inv []awsapi.InventoryItem
		listed := false
		if !f.noInventory {
			cfg, err := loadAWS(ctx, profile, region, nil)
			if err == nil {
				region = cfg.Region // the region the SDK settled on: written into the ProxyCommand
				lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				var imgErr error
				inv, imgErr, err = awsapi.Inventory(lctx, cfg)
				cancel()
				if err == nil {
					listed = true
					if imgErr != nil {
						fmt.Fprintf(io.ErrOut, "devgate: warning: cannot describe the instances' images (%v); their OS user falls back to the default\n", imgErr)
					}
				}
			}
			if err != nil {
				fmt.Fprintf(io.ErrOut, "devgate: warning: cannot list instances (%v); writing only the %s-* block\n", err, prefix)
				if h := exitcode.HintOf(err); h != "" {
					fmt.Fprintf(io.ErrOut, "devgate: hint: %s\n", h)
				}
			}
		}
		defUser := ""
		if userForced {
			defUser = r.User
		}
		if op, or, claimed := cf.ClaimPrefix(prefix, profile, region, defUser); !claimed {
			fmt.Fprintf(io.ErrOut, "devgate: %s-* (instances not listed yet) stays with %s, another set's; --prefix gives this account its own\n",
				prefix, describeSet(op, or))
		}
		if listed {
			var hosts []config.Host
			for _, it := range inv {
				u := r.User
				why := string(r.From["user"])
				if !userForced {
					if pu, pwhy := osuser.Pick(it.Tags, osuser.Image{Name: it.ImageName, Description: it.ImageDescription, PlatformDetails: it.PlatformDetails}); pu != "" {
						u, why = pu, pwhy
					}
				}
				hosts = append(hosts, config.Host{Prefix: prefix, Name: it.Name, ID: it.ID,
					Settings: config.Settings{User: u, Profile: profile, Region: region}})
				label := it.Name
				if label == "" {
					label = it.ID
				}
				fmt.Fprintf(io.ErrOut, "devgate: %s (%s): user %s (%s)\n", label, it.ID, u, why)
			}
			cf.ReplaceSet(prefix, profile, region, hosts, func(name, id string) string { return sshconfig.Alias(prefix, name, id) })
		}
	}

	opts := sshconfig.Options{
		GOOS: runtime.GOOS, Home: home, Binary: bin, Tilde: tilde, KeyPath: keyPath,
		User:   cf.Resolve("", config.Settings{}, "", func(string) string { return "" }).User,
		Prefix: prefix, Sets: setsOf(cf),
	}
	if v, err := exec.Command("ssh", "-V").CombinedOutput(); err == nil && !sshconfig.SupportsMatchFinal(string(v)) {
		opts.PlainHost = true
		fmt.Fprintf(io.ErrOut, "devgate: warning: %s has no `Match final` (OpenSSH 8.2+): devgate's settings will come before your own for its hosts\n", strings.TrimSpace(string(v)))
	}
	changes, err := sshconfig.Plan(opts, instancesOf(cf))
	if err != nil {
		return err
	}
	cc, err := sshconfig.ReadChange(cfPath, cf.Marshal(), 0o600, 0o700)
	if err != nil {
		return err
	}
	changes = append(changes, cc)
	_, keyErr := os.Stat(keyPath)
	needKey := errors.Is(keyErr, os.ErrNotExist)
	if needKey {
		if f.key != "" {
			return exitcode.New(exitcode.Config, "pass an existing private key, or omit --key to use ~/.ssh/devgate/id_ed25519", "key %s does not exist", keyPath)
		}
		fmt.Fprintf(io.ErrOut, "devgate: will create key pair %s (ed25519)\n", keyPath)
	}
	pending := 0
	for _, c := range changes {
		if c.Changed() {
			pending++
			fmt.Fprint(io.Out, c.Diff())
		}
	}
	controlDir := sshconfig.ControlDir(opts)
	if pending == 0 && !needKey {
		if err := sshkey.CheckPermissions(keyPath); err != nil {
			return err
		}
		if runtime.GOOS != "windows" && !f.dryRun {
			if err := sshconfig.EnsureControlDir(home, controlDir); err != nil {
				return exitcode.Wrap(err, exitcode.Config, "remove it (or fix its owner and mode), then run setup again", "unsafe ControlMaster directory")
			}
		}
		fmt.Fprintln(io.ErrOut, "devgate: everything is already set up; nothing changed")
		return nil
	}
	if f.dryRun {
		fmt.Fprintln(io.ErrOut, "devgate: --dry-run: nothing written")
		return nil
	}
	if !f.yes {
		ok, err := confirm(io, "Write these changes?")
		if err != nil {
			return err
		}
		if !ok {
			return exitcode.New(exitcode.Declined, "run again and answer y, or pass --yes", "setup cancelled; nothing written")
		}
	}
	key, err := sshkey.Ensure(keyPath)
	if err != nil {
		return err
	}
	if key.Created {
		fmt.Fprintf(io.ErrOut, "devgate: created %s (%s)\n", key.Path, key.Public.Fingerprint)
	}
	if runtime.GOOS != "windows" {
		if err := sshconfig.EnsureControlDir(home, controlDir); err != nil {
			return exitcode.Wrap(err, exitcode.Config, "remove it (or fix its owner and mode), then run setup again", "unsafe ControlMaster directory")
		}
	}
	if err := applyChanges(io.ErrOut, changes, time.Now()); err != nil {
		return err
	}
	try := "ssh"
	if !tilde {
		// ssh reads ~/.ssh/config from the passwd entry's home directory, not
		// $HOME (ssh(1), FILES), so with HOME pointing elsewhere a plain
		// `ssh <alias>` never sees what setup wrote.
		userCfg := sshconfig.UserConfigPath(home)
		fmt.Fprintf(io.ErrOut, "devgate: warning: $HOME (%s) is not your home directory in the passwd database, where ssh looks for ~/.ssh/config: run ssh with -F %s\n", home, userCfg)
		try = "ssh -F " + shquote.Quote(userCfg)
	}
	for _, a := range cf.Aliases() {
		if cf.Hosts[a].Prefix == prefix && !f.remove {
			fmt.Fprintf(io.ErrOut, "devgate: try: %s %s\n", try, a)
			break
		}
	}
	return nil
}

// describeSet names a set's account for messages: "profile A, region R"
// ("no profile" for the SDK's own chain).
func describeSet(profile, region string) string {
	p := "no profile"
	if profile != "" {
		p = "profile " + profile
	}
	if region != "" {
		return p + ", region " + region
	}
	return p
}

// setsOf lists the (prefix, profile, region) sets of the config: each prefix
// entry, and each distinct set of its hosts.
func setsOf(cf *config.File) []sshconfig.Set {
	var out []sshconfig.Set
	seen := map[sshconfig.Set]bool{}
	add := func(s sshconfig.Set) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	ps := make([]string, 0, len(cf.Prefixes))
	for p := range cf.Prefixes {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	for _, p := range ps {
		add(sshconfig.Set{Prefix: p, Profile: cf.Prefixes[p].Profile, Region: cf.Prefixes[p].Region})
	}
	for _, a := range cf.Aliases() {
		h := cf.Hosts[a]
		if !cf.HasPrefix(h.Prefix) {
			add(sshconfig.Set{Prefix: h.Prefix, Profile: h.Profile, Region: h.Region})
		}
	}
	return out
}

// instancesOf lists the config's hosts for the managed ssh config.
func instancesOf(cf *config.File) []sshconfig.Instance {
	var out []sshconfig.Instance
	for _, a := range cf.Aliases() {
		h := cf.Hosts[a]
		out = append(out, sshconfig.Instance{Alias: a, Name: h.Name, ID: h.ID, User: h.User,
			Profile: h.Profile, Region: h.Region, Prefix: h.Prefix})
	}
	return out
}

// confirm asks on stderr and reads y/n from In.
func confirm(io IO, q string) (bool, error) {
	fmt.Fprintf(io.ErrOut, "%s [y/N] ", q)
	line, err := bufio.NewReader(io.In).ReadString('\n')
	if err != nil && !errors.Is(err, stdio.EOF) {
		return false, exitcode.Wrap(err, exitcode.LocalIO, "", "cannot read the answer")
	}
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes", nil
}

// applyChanges writes the planned file changes (setup's, vscode's), saying
// on w what was backed up and written.
func applyChanges(w stdio.Writer, changes []sshconfig.Change, now time.Time) error {
	for _, c := range changes {
		bak, err := c.Apply(now)
		if err != nil {
			return err
		}
		if bak != "" {
			fmt.Fprintf(w, "devgate: backed up %s to %s\n", c.Path, bak)
		}
		if c.Changed() {
			fmt.Fprintf(w, "devgate: wrote %s\n", c.Path)
		}
	}
	return nil
}
