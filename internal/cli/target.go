package cli

import (
	"context"
	"os"
	"os/user"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/devgate/devgate/internal/awsapi"
	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/sshconfig"
)

// defaultPrefix is the alias prefix `devgate setup` uses unless told otherwise.
const defaultPrefix = "devbox"

// resolveOptions are the target-resolution settings shared by every command:
// the managed ssh config's aliases and the user's cache of resolved names.
func resolveOptions(prefix string) awsapi.ResolveOptions {
	o := awsapi.ResolveOptions{Prefix: prefix}
	if home, _, err := homeDir(); err == nil {
		if b, err := os.ReadFile(sshconfig.ManagedPath(home)); err == nil {
			o.Aliases = sshconfig.ManagedHosts(b)
		}
	}
	if dir := stateDir(); dir != "" {
		o.CacheFile = filepath.Join(dir, "targets.json")
	}
	return o
}

// resolveInstance maps a target to one instance, described now.
func resolveInstance(ctx context.Context, cfg aws.Config, target string) (awsapi.Instance, error) {
	t, err := awsapi.Resolve(ctx, cfg, target, resolveOptions(defaultPrefix))
	if err != nil {
		return awsapi.Instance{}, err
	}
	rows, err := awsapi.Describe(ctx, cfg, true, []string{t.ID}, time.Now())
	if err != nil {
		return awsapi.Instance{}, err
	}
	if len(rows) != 1 {
		return awsapi.Instance{}, exitcode.New(exitcode.NotFound, "run `devgate ls` to see the instances", "instance %s not found", t.ID)
	}
	return rows[0], nil
}

// defaultUser is the OS user a key is pushed for when neither --user nor DEVGATE_USER says.
const defaultUser = "ec2-user"

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

// osUser is the OS user on the instance: the flag, else $DEVGATE_USER, else ec2-user.
func osUser(flag string) string {
	if flag != "" {
		return flag
	}
	if u := os.Getenv("DEVGATE_USER"); u != "" {
		return u
	}
	return defaultUser
}

// stateDir is devgate's per-user state (key-push stamps, name cache, cp journals); "" when the
// platform has no cache directory.
func stateDir() string {
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "devgate")
	}
	return ""
}
