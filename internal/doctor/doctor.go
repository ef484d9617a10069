// Package doctor runs devgate's diagnostic checks: each check yields a
// result that is ✓ or ✗ and, on ✗, the fix. Local checks (key permissions,
// the ssh client's version, `ssh -G` resolving the alias through the Include,
// ControlPath length, VS Code settings) run real programs and read real
// files; AWS checks (credentials, region, clock skew, permissions, instance,
// agent, key push, sshd's banner through a real session) go through the AWS
// interface; SDK (aws.go) implements it with the AWS SDK, so cli only
// passes flags in.
//
// It does not fix anything or print anything (cli renders the results).
package doctor

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/sshconfig"
	"github.com/devgate/devgate/internal/sshkey"
	"github.com/devgate/devgate/internal/ssmmsg"
	"github.com/devgate/devgate/internal/vscode"
)

// Result is the outcome of one check.
type Result struct {
	Name    string `json:"name"`
	OK      bool   `json:"ok"`
	Skipped bool   `json:"skipped,omitempty"` // not run because a check it needs failed
	// Info marks a check that did not pass but is not a failure (e.g. the
	// direct path with --path auto: Session Manager still works).
	Info   bool   `json:"info,omitempty"`
	Detail string `json:"detail,omitempty"`
	Fix    string `json:"fix,omitempty"`
}

// Check is one named diagnostic.
type Check struct {
	Name string
	Run  func(ctx context.Context) Result
}

// Run runs the checks in order.
func Run(ctx context.Context, checks []Check) []Result {
	out := make([]Result, 0, len(checks))
	for _, c := range checks {
		r := c.Run(ctx)
		r.Name = c.Name
		out = append(out, r)
	}
	return out
}

// Failed reports whether any result failed (skipped ones count as failed:
// something they needed failed).
func Failed(rs []Result) bool {
	for _, r := range rs {
		if !r.OK && !r.Info {
			return true
		}
	}
	return false
}

func pass(detail string) Result { return Result{OK: true, Detail: detail} }

func fail(detail, fix string) Result { return Result{Detail: detail, Fix: fix} }

func skipped(why string) Result { return Result{Skipped: true, Detail: "skipped: " + why} }

// fromErr makes a failed result from an error, using its exitcode hint as the fix.
func fromErr(err error, fix string) Result {
	if h := exitcode.HintOf(err); h != "" {
		fix = h
	}
	return fail(err.Error(), fix)
}

// KeyPermissions checks devgate's private key: present, 0600, directory not
// writable by others.
func KeyPermissions(keyPath string) Check {
	return Check{Name: "key permissions", Run: func(context.Context) Result {
		if err := sshkey.CheckPermissions(keyPath); err != nil {
			return fromErr(err, "chmod 600 "+keyPath)
		}
		return pass(keyPath)
	}}
}

// MinSSH is the oldest OpenSSH devgate's config works with
// (StrictHostKeyChecking accept-new, 7.6p1).
const MinSSH = 7.6

var sshVersionRe = regexp.MustCompile(`OpenSSH[_a-zA-Z]*_(\d+)\.(\d+)`)

// SSHVersion checks the local ssh client's version (ssh -V).
func SSHVersion(sshPath string) Check {
	return Check{Name: "local ssh version", Run: func(ctx context.Context) Result {
		out, err := exec.CommandContext(ctx, sshPath, "-V").CombinedOutput()
		if err != nil {
			return fail(fmt.Sprintf("%s -V: %v", sshPath, err), "install the OpenSSH client (openssh-client)")
		}
		m := sshVersionRe.FindStringSubmatch(string(out))
		if m == nil {
			return fail("unrecognised ssh version: "+strings.TrimSpace(string(out)), "install the OpenSSH client, 7.6 or newer")
		}
		v, _ := strconv.ParseFloat(m[1]+"."+m[2], 64)
		if v < MinSSH {
			return fail(strings.TrimSpace(string(out))+" is older than 7.6 (no StrictHostKeyChecking accept-new)", "upgrade the OpenSSH client to 7.6 or newer")
		}
		return pass(strings.TrimSpace(string(out)))
	}}
}

// SSHConfig resolves an alias with the real `ssh -G` once and serves the
// checks built on it.
type SSHConfig struct {
	SSH        string   // ssh binary; default "ssh"
	ConfigFile string   // -F file; empty: ssh's default (~/.ssh/config)
	Env        []string // environment for ssh; nil: inherited
	Alias      string
	GOOS       string

	once sync.Once
	opts map[string]string
	err  error
}

func (s *SSHConfig) resolve(ctx context.Context) (map[string]string, error) {
	s.once.Do(func() {
		bin := s.SSH
		if bin == "" {
			bin = "ssh"
		}
		args := []string{"-G"}
		if s.ConfigFile != "" {
			args = append(args, "-F", s.ConfigFile)
		}
		cmd := exec.CommandContext(ctx, bin, append(args, s.Alias)...)
		cmd.Env = s.Env
		out, err := cmd.Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
			}
			s.err = err
			return
		}
		s.opts = map[string]string{}
		for _, l := range strings.Split(string(out), "\n") {
			k, v, _ := strings.Cut(strings.TrimSpace(l), " ")
			if _, dup := s.opts[k]; !dup && k != "" {
				s.opts[k] = v
			}
		}
	})
	return s.opts, s.err
}

// Resolves checks that `ssh -G <alias>` picks up devgate's ProxyCommand
// through the Include.
func (s *SSHConfig) Resolves() Check {
	return Check{Name: "ssh -G " + s.Alias, Run: func(ctx context.Context) Result {
		o, err := s.resolve(ctx)
		if err != nil {
			return fail(err.Error(), "run `devgate setup`")
		}
		pc := o["proxycommand"]
		if !strings.Contains(pc, " connect ") {
			file := "~/.ssh/config"
			if s.ConfigFile != "" {
				file = s.ConfigFile
			}
			return fail(fmt.Sprintf("%s has no devgate ProxyCommand in %s (got %q): the Include is missing, or a Host block above it wins", s.Alias, file, pc),
				"run `devgate setup`; make sure `Include …/.ssh/devgate/config` is above every Host/Match in "+file)
		}
		if o["stricthostkeychecking"] == "false" {
			return fail("StrictHostKeyChecking is off for "+s.Alias, "remove `StrictHostKeyChecking no` from ~/.ssh/config; devgate pins host keys (accept-new)")
		}
		return pass(fmt.Sprintf("hostname %s, user %s, proxycommand %s", o["hostname"], o["user"], pc))
	}}
}

// ControlPathLength checks the resolved ControlPath against the socket-path
// limit of the OS (sun_path minus the mux master's temporary suffix).
func (s *SSHConfig) ControlPathLength() Check {
	return Check{Name: "ControlPath length", Run: func(ctx context.Context) Result {
		o, err := s.resolve(ctx)
		if err != nil {
			return skipped("ssh -G failed")
		}
		cp := o["controlpath"]
		if cp == "" || cp == "none" {
			return pass("no ControlPath (connection sharing off)")
		}
		sun := sshconfig.SunPathLinux
		if s.GOOS == "darwin" || strings.HasSuffix(s.GOOS, "bsd") {
			sun = sshconfig.SunPathDarwin
		}
		max := sun - 1 - sshconfig.MuxTempSuffix
		if len(cp) > max {
			return fail(fmt.Sprintf("ControlPath %s is %d bytes; %s allows %d (ssh fails with \"ControlPath too long\")", cp, len(cp), s.GOOS, max),
				"set a shorter ControlPath for this host above the Include in ~/.ssh/config, e.g. `ControlPath /tmp/cm-%C`")
		}
		return pass(fmt.Sprintf("%d of %d bytes", len(cp), max))
	}}
}

// VSCodeSettings checks that each installed VS Code's settings.json has the
// Remote-SSH settings for the aliases.
func VSCodeSettings(products []vscode.Product, read func(string) ([]byte, error), timeout int, aliases []string) Check {
	return Check{Name: "VS Code settings", Run: func(context.Context) Result {
		if len(products) == 0 {
			return pass("no VS Code configuration found (nothing to check)")
		}
		var bad []string
		for _, p := range products {
			b, err := read(p.Path)
			if err != nil {
				bad = append(bad, fmt.Sprintf("%s: %v", p.Path, err))
				continue
			}
			missing, err := vscode.Check(b, timeout, aliases)
			if err != nil {
				bad = append(bad, fmt.Sprintf("%s: %v", p.Path, err))
			} else if len(missing) > 0 {
				bad = append(bad, fmt.Sprintf("%s lacks %s", p.Path, strings.Join(missing, ", ")))
			}
		}
		if len(bad) > 0 {
			return fail(strings.Join(bad, "; "), "run `devgate vscode --write`")
		}
		return pass(fmt.Sprintf("%d settings file(s) ok", len(products)))
	}}
}

// AWS is what the AWS checks need; cli implements it with the SDK.
type AWS interface {
	Region() string
	// Identity calls sts:GetCallerIdentity.
	Identity(ctx context.Context) (arn string, err error)
	// ServerDate is the Date header of the last AWS response (zero if none).
	ServerDate() time.Time
	// Probe makes one harmless call that needs permission action
	// (describe calls, or DryRun) and returns its error, nil when allowed.
	Probe(ctx context.Context, action, instanceID string) error
	// Instance resolves a target to an instance id and state.
	Instance(ctx context.Context, target string) (id, state string, err error)
	// Agent returns the SSM ping status and agent version ("" when SSM does not know the instance).
	Agent(ctx context.Context, id string) (ping, version string, err error)
	// PushKey sends a public key with EC2 Instance Connect.
	PushKey(ctx context.Context, id, osUser, publicKey string) error
	// SSHBanner opens a real Session Manager session to port 22 of the
	// instance and returns the first line the target sent (sshd's banner).
	SSHBanner(ctx context.Context, id string) (string, error)
}

// MaxSkew is the clock skew above which SigV4 requests are rejected.
const MaxSkew = 5 * time.Minute

// Permissions devgate probes with harmless calls.
var Permissions = []string{"ec2:DescribeInstances", "ssm:DescribeInstanceInformation", "ec2:StartInstances"}

// AWSChecks returns the AWS checks in order. target may be empty (no
// instance checks); pubKey is the authorized_keys line pushed as a test.
func AWSChecks(a AWS, now func() time.Time, target, osUser, pubKey string) []Check {
	var credsOK bool
	var id, state string
	var instOK, agentOK bool
	checks := []Check{
		{Name: "region", Run: func(context.Context) Result {
			if a.Region() == "" {
				return fail("no region", "pass --region or set AWS_REGION / region in ~/.aws/config")
			}
			return pass(a.Region())
		}},
		{Name: "AWS credentials", Run: func(ctx context.Context) Result {
			arn, err := a.Identity(ctx)
			if err != nil {
				return fromErr(err, "check your AWS credentials (aws sts get-caller-identity), or run aws sso login")
			}
			credsOK = true
			return pass(arn)
		}},
		{Name: "clock skew", Run: func(context.Context) Result {
			d := a.ServerDate()
			if d.IsZero() {
				return skipped("no response from AWS carried a Date header")
			}
			skew := now().Sub(d)
			if skew < 0 {
				skew = -skew
			}
			if skew > MaxSkew {
				return fail(fmt.Sprintf("local clock is off by %s from AWS (SigV4 allows 5m)", skew.Round(time.Second)), "sync the clock (e.g. enable NTP: timedatectl set-ntp true)")
			}
			return pass(fmt.Sprintf("%s", skew.Round(time.Second)))
		}},
	}
	for _, p := range Permissions {
		checks = append(checks, Check{Name: "permission " + p, Run: func(ctx context.Context) Result {
			if !credsOK {
				return skipped("credentials failed")
			}
			if p == "ec2:StartInstances" && id == "" {
				if target == "" {
					return pass("not probed (no target)")
				}
				return skipped("instance not found")
			}
			if err := a.Probe(ctx, p, id); err != nil {
				return fromErr(err, "grant "+p+" to your IAM identity")
			}
			return pass("allowed")
		}})
	}
	if target == "" {
		return checks
	}
	// The instance must come before the StartInstances probe (DryRun needs an id).
	inst := Check{Name: "instance " + target, Run: func(ctx context.Context) Result {
		if !credsOK {
			return skipped("credentials failed")
		}
		var err error
		id, state, err = a.Instance(ctx, target)
		if err != nil {
			return fromErr(err, "run `devgate ls` to see the instances")
		}
		switch state {
		case "running":
			instOK = true
			return pass(id + " running")
		case "stopped", "stopping":
			return fail(fmt.Sprintf("%s is %s", id, state), "devgate start "+target+" --wait (connect also starts it)")
		case "pending":
			return fail(id+" is still starting", "wait, or: devgate start "+target+" --wait")
		}
		return fail(fmt.Sprintf("%s is %s", id, state), "launch a new instance")
	}}
	checks = append(checks[:3], append([]Check{inst}, checks[3:]...)...)
	checks = append(checks,
		Check{Name: "SSM agent", Run: func(ctx context.Context) Result {
			if !instOK {
				return skipped("instance not running")
			}
			ping, ver, err := a.Agent(ctx, id)
			if err != nil {
				return fromErr(err, "grant ssm:DescribeInstanceInformation")
			}
			if ping == "" {
				return fail("the instance is not registered with SSM", "attach an instance profile with AmazonSSMManagedInstanceCore and check the agent can reach ssm/ssmmessages/ec2messages endpoints")
			}
			if ping != "Online" {
				return fail("agent is "+ping, "restart the agent (sudo systemctl restart amazon-ssm-agent) and check its network path to the SSM endpoints")
			}
			agentOK = true
			if !ssmmsg.ClientChoosesMux(ver) {
				return fail("agent "+ver+" is too old for multiplexed port sessions", "update the agent (AWS-UpdateSSMAgent)")
			}
			return pass("Online, agent " + ver)
		}},
		Check{Name: "test key push", Run: func(ctx context.Context) Result {
			if !instOK {
				return skipped("instance not running")
			}
			if err := a.PushKey(ctx, id, osUser, pubKey); err != nil {
				return fromErr(err, "grant ec2-instance-connect:SendSSHPublicKey and install ec2-instance-connect on the instance")
			}
			return pass("EC2 Instance Connect accepted the key for " + osUser)
		}},
		Check{Name: "SSM session to port 22", Run: func(ctx context.Context) Result {
			if !agentOK {
				return skipped("agent not online")
			}
			banner, err := a.SSHBanner(ctx, id)
			if err != nil {
				return fromErr(err, "check ssm:StartSession on the instance and AWS-StartSSHSession, and that the network reaches ssmmessages")
			}
			if !strings.HasPrefix(banner, "SSH-") {
				return fail(fmt.Sprintf("port 22 answered %q, not an SSH banner", banner), "check that sshd runs on the instance and listens on port 22")
			}
			return pass(banner)
		}},
	)
	return checks
}

// ProxyCommandBinary checks that the program the alias's ProxyCommand runs
// exists and is executable (a package-manager upgrade can remove a
// versioned path).
func (s *SSHConfig) ProxyCommandBinary() Check {
	return Check{Name: "ProxyCommand binary", Run: func(ctx context.Context) Result {
		o, err := s.resolve(ctx)
		if err != nil {
			return skipped("ssh -G failed")
		}
		bin := proxyBinary(o["proxycommand"])
		if bin == "" {
			return skipped("no ProxyCommand")
		}
		p, err := exec.LookPath(bin)
		if err != nil {
			return fail(fmt.Sprintf("%s (from the ProxyCommand of %s): %v", bin, s.Alias, err),
				"run `devgate setup` again with the devgate you use now")
		}
		return pass(p)
	}}
}

// proxyBinary returns the program of a ProxyCommand ("exec " and shell quotes removed).
func proxyBinary(pc string) string {
	pc = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(pc), "exec "))
	if pc == "" || pc == "none" {
		return ""
	}
	if q := pc[0]; q == '\'' || q == '"' {
		if i := strings.IndexByte(pc[1:], q); i >= 0 {
			return pc[1 : i+1]
		}
	}
	bin, _, _ := strings.Cut(pc, " ")
	return bin
}
