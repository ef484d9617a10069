package cli

import (
	"context"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/devgate/devgate/internal/awsapi"
	"github.com/devgate/devgate/internal/config"
	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/sshconfig"
)

// target is what every command that reaches an instance resolves first:
// devgate's settings for it (internal/config: flag > environment > config
// per host > per prefix > defaults > built-in) and the options that map it to
// an instance. bench, shell and exec use it the same way:
//
//	t, err := resolveTarget(args[0], config.Settings{User: user, Profile: af.profile, Region: af.region, Path: path}, prefix)
//	cfg, err := t.aws(ctx)
//	tunnel.Options{Target: args[0], User: t.User, Resolve: t.Resolve, StateDir: config.StateDir(), …}
type target struct {
	config.Resolved
	File    *config.File
	Resolve awsapi.ResolveOptions
}

// loadConfig reads devgate's config file ($DEVGATE_CONFIG or
// os.UserConfigDir()/devgate/config.json).
func loadConfig() (*config.File, string, error) {
	path := config.DefaultFile(os.Getenv)
	f, err := config.Load(path)
	if err != nil {
		return nil, path, exitcode.Wrap(err, exitcode.Config, "fix or remove "+path+" (`devgate setup` rewrites it)", "cannot read devgate's config")
	}
	return f, path, nil
}

// resolveTarget resolves the settings of name ("" for commands without a
// target) from flags, the environment and the config file.
func resolveTarget(name string, flags config.Settings, prefix string) (target, error) {
	f, _, err := loadConfig()
	if err != nil {
		return target{}, err
	}
	r := f.Resolve(name, flags, prefix, os.Getenv)
	t := target{Resolved: r, File: f}
	t.Resolve = awsapi.ResolveOptions{Prefix: r.Prefix, Names: f.NameAliases()}
	// Managed ssh configs written before devgate's config existed name ids (HostName i-…).
	if home, _, err := homeDir(); err == nil {
		if b, err := os.ReadFile(sshconfig.ManagedPath(home)); err == nil {
			t.Resolve.Aliases = sshconfig.ManagedHosts(b)
		}
	}
	if dir := config.StateDir(); dir != "" {
		t.Resolve.CacheFile = filepath.Join(dir, "targets.json")
	}
	return t, nil
}

// aws loads the SDK configuration for the target's profile and region
// (sdkLog: see loadAWS).
func (t target) aws(ctx context.Context, sdkLog *slog.Logger) (aws.Config, error) {
	return loadAWS(ctx, t.Profile, t.Region, sdkLog)
}

// describe maps the target to one instance, described now.
func (t target) describe(ctx context.Context, cfg aws.Config, name string) (awsapi.Instance, error) {
	r, err := awsapi.Resolve(ctx, cfg, name, t.Resolve)
	if err != nil {
		return awsapi.Instance{}, err
	}
	rows, err := awsapi.Describe(ctx, cfg, true, []string{r.ID}, time.Now())
	if err != nil {
		return awsapi.Instance{}, err
	}
	if len(rows) != 1 {
		return awsapi.Instance{}, exitcode.New(exitcode.NotFound, "run `devgate ls` to see the instances", "instance %s not found", r.ID)
	}
	return rows[0], nil
}

// stateDir is devgate's per-user state directory (internal/config.StateDir).
func stateDir() string { return config.StateDir() }

// sessionReason is StartSession's Reason: the --reason flag, else
// "devgate <command> by <local user>" so that CloudTrail shows who opened
// the session with what.
func sessionReason(flag, command string) string {
	if flag != "" {
		return flag
	}
	who := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		who = u.Username
	}
	if who == "" {
		who = "unknown user"
	}
	return "devgate " + command + " by " + who
}
