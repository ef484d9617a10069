package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	stdio "io"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/spf13/cobra"

	"github.com/devgate/devgate/internal/awsapi"
	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/sshconfig"
	"github.com/devgate/devgate/internal/sshkey"
)

func init() { register(newSetupCommand) }

type setupFlags struct {
	profile, region, user, prefix, key string
	dryRun, yes, noInventory           bool
}

func newSetupCommand(io IO) *cobra.Command {
	var f setupFlags
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Create devgate's key and ssh config so that `ssh <prefix>-<name>` reaches your devboxes",
		Long: `setup creates devgate's key pair (~/.ssh/devgate/id_ed25519) unless one exists,
writes the managed ssh config ~/.ssh/devgate/config (one Host block per instance
found, plus Host <prefix>-* with devgate as ProxyCommand and pinned host keys),
and adds one Include line at the top of ~/.ssh/config. It shows a unified diff
and asks before writing (--yes skips the question, --dry-run only shows), backs
up every file it changes, and changes nothing when run twice.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSetup(cmd.Context(), io, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.profile, "profile", "", "AWS profile written into the ProxyCommand (default: the SDK's default chain)")
	fl.StringVar(&f.region, "region", "", "AWS region written into the ProxyCommand (default: from the profile/environment)")
	fl.StringVar(&f.user, "user", "ec2-user", "remote user (ssh User)")
	fl.StringVar(&f.prefix, "prefix", "devbox", "alias prefix: hosts are <prefix>-<Name tag>")
	fl.StringVar(&f.key, "key", "", "private key to use (default ~/.ssh/devgate/id_ed25519, created if missing)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "show the diff and write nothing")
	fl.BoolVar(&f.yes, "yes", false, "write without asking")
	fl.BoolVar(&f.noInventory, "no-inventory", false, "do not list instances (only the <prefix>-* block)")
	return cmd
}

// homeDir returns the home directory and whether ssh expands "~" to it (ssh
// uses the passwd entry, not $HOME, so a HOME override gets absolute paths).
func homeDir() (home string, tilde bool, err error) {
	home, err = os.UserHomeDir()
	if err != nil {
		return "", false, exitcode.Wrap(err, exitcode.LocalIO, "set HOME", "cannot find the home directory")
	}
	if u, err := user.Current(); err == nil && filepath.Clean(u.HomeDir) == filepath.Clean(home) {
		tilde = true
	}
	if runtime.GOOS == "windows" {
		tilde = true // Windows OpenSSH expands ~ to %USERPROFILE%
	}
	return home, tilde, nil
}

// devgateBinary is the absolute path of the running binary, symlinks resolved.
func devgateBinary() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", exitcode.Wrap(err, exitcode.LocalIO, "run devgate by its full path", "cannot find devgate's own path")
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
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
	opts := sshconfig.Options{
		GOOS: runtime.GOOS, Home: home, Binary: bin, Tilde: tilde,
		Profile: f.profile, Region: f.region, User: f.user, Prefix: f.prefix, KeyPath: keyPath,
	}

	var inv []sshconfig.Instance
	if !f.noInventory {
		inv, err = listInventory(ctx, f.profile, f.region)
		if err != nil {
			fmt.Fprintf(io.ErrOut, "devgate: warning: cannot list instances (%v); writing only the %s-* block\n", err, f.prefix)
			if h := exitcode.HintOf(err); h != "" {
				fmt.Fprintf(io.ErrOut, "devgate: hint: %s\n", h)
			}
			inv = nil
		}
	}

	if n, max, ok := sshconfig.ControlPathLen(opts); !ok {
		fmt.Fprintf(io.ErrOut, "devgate: warning: the ControlPath would be %d bytes, over the %d this OS's socket paths allow; ssh will fail with \"ControlPath too long\"\n", n, max)
		fmt.Fprintf(io.ErrOut, "devgate: hint: use a shorter home directory path, or set ControlPath to a short directory (e.g. /tmp/cm-%%C) for %s-* in ~/.ssh/config above the Include\n", f.prefix)
	}

	changes, err := sshconfig.Plan(opts, inv)
	if err != nil {
		return err
	}
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
	if pending == 0 && !needKey {
		if err := sshkey.CheckPermissions(keyPath); err != nil {
			return err
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
		cm := filepath.Join(sshkey.DefaultDir(home), "cm")
		if err := os.MkdirAll(cm, 0o700); err != nil {
			return exitcode.Wrap(err, exitcode.LocalIO, "check ~/.ssh permissions", "cannot create %s", cm)
		}
	}
	now := time.Now()
	for _, c := range changes {
		bak, err := c.Apply(now)
		if err != nil {
			return err
		}
		if bak != "" {
			fmt.Fprintf(io.ErrOut, "devgate: backed up %s to %s\n", c.Path, bak)
		}
		if c.Changed() {
			fmt.Fprintf(io.ErrOut, "devgate: wrote %s\n", c.Path)
		}
	}
	if as := sshconfig.Aliases(opts.Prefix, inv); len(as) > 0 {
		fmt.Fprintf(io.ErrOut, "devgate: try: ssh %s\n", as[0].Name)
	}
	return nil
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

// listInventory returns the non-terminated instances (Name tag, id) in the
// region, with the AWS SDK's default chain (AWS_ENDPOINT_URL is honoured).
func listInventory(ctx context.Context, profile, region string) ([]sshconfig.Instance, error) {
	cfg, err := awsapi.Load(ctx, profile, region)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	p := ec2.NewDescribeInstancesPaginator(ec2.NewFromConfig(cfg), &ec2.DescribeInstancesInput{
		Filters: []ec2types.Filter{{Name: aws.String("instance-state-name"),
			Values: []string{"pending", "running", "stopping", "stopped"}}},
	})
	var out []sshconfig.Instance
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, awsapi.Classify(err, "ec2:DescribeInstances")
		}
		for _, r := range page.Reservations {
			for _, in := range r.Instances {
				name := ""
				for _, t := range in.Tags {
					if aws.ToString(t.Key) == "Name" {
						name = aws.ToString(t.Value)
					}
				}
				out = append(out, sshconfig.Instance{Name: name, ID: aws.ToString(in.InstanceId)})
			}
		}
	}
	return out, nil
}
