// Package labcli is the devgate-lab command: `up` runs a simulated AWS region
// (package lab) in the foreground and writes the files a user needs to reach
// it (D/env, D/ssh_config); `down` stops a running one; `env` prints its
// variables. It holds no simulation logic of its own.
package labcli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/devgate/devgate/internal/atomicfile"
	"github.com/devgate/devgate/internal/cmdargs"
	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/faults"
	"github.com/devgate/devgate/internal/shquote"
)

// Files a running lab keeps in its directory.
const (
	EnvFile       = "env"
	SSHConfigFile = "ssh_config"
	PidFile       = "lab.pid"
	KnownHosts    = "known_hosts"
	InstancesFile = "instances.json"
	LogFile       = "lab.log"
	// AdminTokenFile holds the token of the lab's /_lab/ endpoint (`devgate-lab vpn` uses it).
	AdminTokenFile = "admin-token"
	IDsFileName    = lab.IDsFile // instance ids of this lab dir, kept across restarts
)

// ServiceFactory adds services (ACM, S3, …) to a lab; main wires them.
type ServiceFactory func() []lab.Service

// Main runs devgate-lab with args and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, services ServiceFactory) int {
	root := &cobra.Command{
		Use:           "devgate-lab",
		Short:         "A simulated AWS region with real sshd devboxes, for trying and testing devgate",
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetOut(stdout) // help and usage on stdout, as for devgate
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageErr(err.Error(), c.CommandPath()+" --help") })
	root.AddCommand(upCmd(args, stdout, stderr, services), downCmd(stdout), envCmd(stdout), vpnCmd(stdout))
	explainArgs(root)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		if errors.Is(err, errReported) {
			return 1
		}
		fmt.Fprintf(stderr, "devgate-lab: error: %v\n", err)
		var u *usageError
		if errors.As(err, &u) {
			fmt.Fprintf(stderr, "devgate-lab: hint: %s\n", u.hint)
			return 2
		}
		if strings.HasPrefix(err.Error(), "unknown command") {
			fmt.Fprintln(stderr, "devgate-lab: hint: devgate-lab --help lists the commands")
			return 2
		}
		return 1
	}
	return 0
}

// explainArgs makes the argument checks of c and the commands below it say
// what is missing or extra, with the usage line as the hint (cmdargs), as
// devgate's do.
func explainArgs(c *cobra.Command) {
	if check := c.Args; check != nil {
		c.Args = func(c *cobra.Command, args []string) error {
			var ae *cmdargs.Error
			if err := cmdargs.Check(c, check, args); errors.As(err, &ae) {
				return usageErr(ae.Msg, "usage: "+ae.Usage)
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		explainArgs(sub)
	}
}

// usageError is a bad flag or argument: exit 2 with a hint, as in devgate.
type usageError struct{ msg, hint string }

func (u *usageError) Error() string { return u.msg }

func usageErr(msg, hint string) error { return &usageError{msg, hint} }

// fileConfig is the optional --config file.
type fileConfig struct {
	Region    string             `json:"region,omitempty"`
	Instances []lab.InstanceSpec `json:"instances,omitempty"`
}

func upCmd(allArgs []string, stdout, stderr io.Writer, services ServiceFactory) *cobra.Command {
	var dir, addr, config, devgate, logLevel string
	var useTLS bool
	var instances []string
	var vpnPorts []int
	var vpnState string
	var detach bool
	var readyTimeout time.Duration
	f := faults.Defaults()
	c := &cobra.Command{
		Use:   "up --dir D",
		Short: "Run the lab in the foreground until `down` or a signal",
		Long: `Runs the lab: every AWS service devgate uses on one loopback port, and a real sshd per instance.
Writes D/env (the variables to export) and D/ssh_config (one Host per instance through devgate connect).
With --detach it runs in the background and returns once the lab is ready (exit 0) or has failed
(its error on stderr, exit 1); its output then goes to D/lab.out.`,
		Example: `  devgate-lab up --dir /tmp/devgate-lab --detach && . /tmp/devgate-lab/env
  devgate-lab up --dir /tmp/lab --instance gpu1 --instance gpu2:stopped --api-latency 50ms
  devgate-lab up --dir /tmp/lab --config fleet.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usageErr("--dir is required", "devgate-lab up --dir /tmp/devgate-lab")
			}
			abs, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			dir = abs
			if pid, alive := running(dir); alive {
				return fmt.Errorf("a lab is already running in %s (pid %d); run `devgate-lab down --dir %s`", dir, pid, dir)
			}
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
			if detach {
				return upDetached(cmd.Context(), dir, allArgs, readyTimeout, stdout, stderr)
			}
			opts := lab.Options{Dir: dir, Addr: addr, Faults: f, TLS: useTLS, VPNPorts: vpnPorts}
			if config != "" {
				fc, err := readConfig(config)
				if err != nil {
					return err
				}
				opts.Region, opts.Instances = fc.Region, fc.Instances
			}
			if len(instances) > 0 {
				opts.Instances = nil
				for _, s := range instances {
					spec, err := parseInstance(s)
					if err != nil {
						return err
					}
					opts.Instances = append(opts.Instances, spec)
				}
			}
			logf, err := os.OpenFile(filepath.Join(dir, LogFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
			if err != nil {
				return err
			}
			defer logf.Close()
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			opts.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(logf, levelFilter{stderr}), &slog.HandlerOptions{Level: lvl}))
			if services != nil {
				opts.Services = services()
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			l, err := lab.Start(ctx, opts)
			if err != nil {
				return err
			}
			defer l.Close()
			if vpnState != lab.VPNRefuse {
				if err := l.SetVPN(vpnState); err != nil {
					return err
				}
			}
			if devgate == "" {
				devgate = findDevgate()
			}
			home, err := os.UserHomeDir()
			if err != nil {
				return fmt.Errorf("the ssh config names devgate's key under the home directory: %w", err)
			}
			// An absolute path: ssh expands ~ from the passwd entry, devgate from $HOME.
			key := filepath.Join(home, ".ssh", "devgate", "id_ed25519")
			if err := WriteFiles(dir, l, devgate, key); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "devgate-lab is up at %s (region %s)\n", l.Endpoint(), l.Region())
			for _, in := range l.Instances() {
				fmt.Fprintf(stdout, "  %-6s %s  %-8s user %s  private %s\n", in.Name, in.ID, in.State, in.User, in.PrivateIP)
			}
			fmt.Fprintf(stdout, "VPN:        %s   (devgate-lab vpn connect|disconnect --dir %s)\n", l.VPN().State, dir)
			fmt.Fprintf(stdout, "env:        %s   (. %s)\n", filepath.Join(dir, EnvFile), filepath.Join(dir, EnvFile))
			fmt.Fprintf(stdout, "ssh config: %s   (ssh -F %s gpu1)\n", filepath.Join(dir, SSHConfigFile), filepath.Join(dir, SSHConfigFile))
			fmt.Fprintf(stdout, "log:        %s\n", filepath.Join(dir, LogFile))
			// The pid file comes last: it is what `up --detach` waits for.
			// Written whole by a rename: a reader never sees it empty.
			pidPath := filepath.Join(dir, PidFile)
			if err := atomicfile.Write(pidPath, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
				return err
			}
			defer os.Remove(pidPath)
			<-ctx.Done()
			fmt.Fprintln(stdout, "devgate-lab: shutting down")
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVar(&dir, "dir", "", "state directory (host keys, pushed keys, env, ssh_config, logs)")
	fl.StringVar(&addr, "addr", "127.0.0.1:0", "listen address of the endpoint")
	fl.StringVar(&config, "config", "", `JSON file: {"region":"…","instances":[{"name":"gpu1","state":"running","type":"g5.xlarge","user":"…"}]}`)
	fl.StringSliceVar(&instances, "instance", nil, "an instance as name[:running|stopped|terminated] (repeatable; default gpu1:running, gpu2:stopped)")
	fl.StringVar(&devgate, "devgate", "", "devgate binary for the ProxyCommand in ssh_config (default: devgate on PATH or beside devgate-lab)")
	fl.BoolVar(&useTLS, "tls", false, "serve HTTPS/WSS with the lab's own CA, written to D/ca.pem (D/env sets AWS_CA_BUNDLE to it)")
	fl.StringVar(&logLevel, "log-level", "info", "log level of D/lab.log (debug, info, warn, error)")
	fl.IntSliceVar(&vpnPorts, "vpn-port", nil, "instance port besides 22 that the VPN model relays to 127.0.0.1:port (repeatable)")
	fl.StringVar(&vpnState, "vpn", lab.VPNRefuse, "initial VPN state: up, refuse (nothing answers, RST) or silence (SYNs dropped)")
	fl.BoolVar(&detach, "detach", false, "run in the background; return when the lab is ready, or fail with its error")
	fl.DurationVar(&readyTimeout, "ready-timeout", 2*time.Minute, "with --detach: how long to wait for the lab to be ready")
	f.RegisterFlags(fl)
	return c
}

// levelFilter passes only warnings and errors to the terminal.
type levelFilter struct{ w io.Writer }

func (l levelFilter) Write(p []byte) (int, error) {
	if strings.Contains(string(p), "level=WARN") || strings.Contains(string(p), "level=ERROR") {
		return l.w.Write(p)
	}
	return len(p), nil
}

func readConfig(path string) (fileConfig, error) {
	var fc fileConfig
	b, err := os.ReadFile(path)
	if err != nil {
		return fc, err
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		return fc, fmt.Errorf("%s: %w", path, err)
	}
	return fc, nil
}

func parseInstance(s string) (lab.InstanceSpec, error) {
	name, state, _ := strings.Cut(s, ":")
	if state == "" {
		state = "running"
	}
	if name == "" || (state != "running" && state != "stopped" && state != "terminated") {
		return lab.InstanceSpec{}, fmt.Errorf("--instance %q: want name[:running|stopped|terminated]", s)
	}
	return lab.InstanceSpec{Name: name, State: state}, nil
}

// findDevgate returns the devgate binary for ProxyCommand lines.
func findDevgate() string {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "devgate")
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p
		}
	}
	if p, err := exec.LookPath("devgate"); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
	}
	return "devgate"
}

// hostName is an instance's Name as one ssh_config Host pattern: a Name tag
// is anyone's text, and a space, a newline or a quote in it would add
// patterns or directives, so every byte outside [A-Za-z0-9._-] becomes "-"
// ("" when nothing is left: the Host line has the instance id alone).
func hostName(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	return strings.Trim(string(b), "-")
}

// WriteFiles writes D/env and D/ssh_config (both 0600): the lab's variables,
// and one Host per instance whose ProxyCommand is `devgate connect`.
func WriteFiles(dir string, l *lab.Lab, devgate, identityFile string) error {
	var env strings.Builder
	env.WriteString("# devgate-lab: source this file (. " + filepath.Join(dir, EnvFile) + ")\n")
	for _, kv := range l.Env() {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&env, "export %s=%s\n", k, shquote.Quote(v))
	}
	// devgate's own defaults for the lab: the instances' OS user (when they share one)
	// and the ssh config doctor checks instead of ~/.ssh/config.
	if u := commonUser(l.Instances()); u != "" {
		fmt.Fprintf(&env, "export DEVGATE_USER=%s\n", shquote.Quote(u))
	}
	fmt.Fprintf(&env, "export DEVGATE_SSH_CONFIG=%s\n", shquote.Quote(filepath.Join(dir, SSHConfigFile)))
	if err := os.WriteFile(filepath.Join(dir, EnvFile), []byte(env.String()), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, AdminTokenFile), []byte(l.AdminToken()+"\n"), 0o600); err != nil {
		return err
	}
	var sc strings.Builder
	fmt.Fprintf(&sc, "# devgate-lab instances; use with: ssh -F %s <name>\n", filepath.Join(dir, SSHConfigFile))
	fmt.Fprintf(&sc, "# Source %s first: devgate connect reads the lab's endpoint and keys from the environment.\n", filepath.Join(dir, EnvFile))
	for _, in := range l.Instances() {
		fmt.Fprintf(&sc, "\nHost %s\n", strings.TrimSpace(hostName(in.Name)+" "+in.ID))
		fmt.Fprintf(&sc, "  HostName %s\n", in.ID)
		fmt.Fprintf(&sc, "  User %s\n", in.User)
		fmt.Fprintf(&sc, "  ProxyCommand %s connect %%h %%p --user %%r\n", sshQuote(devgate))
		fmt.Fprintf(&sc, "  IdentityFile %s\n", sshQuote(identityFile))
		fmt.Fprintf(&sc, "  IdentitiesOnly yes\n")
		fmt.Fprintf(&sc, "  UserKnownHostsFile %s\n", sshQuote(filepath.Join(dir, KnownHosts)))
		fmt.Fprintf(&sc, "  StrictHostKeyChecking accept-new\n")
		fmt.Fprintf(&sc, "  HostKeyAlias %s\n", in.ID)
		fmt.Fprintf(&sc, "  ServerAliveInterval 15\n")
		fmt.Fprintf(&sc, "  ServerAliveCountMax 8\n")
	}
	if err := os.WriteFile(filepath.Join(dir, SSHConfigFile), []byte(sc.String()), 0o600); err != nil {
		return err
	}
	// instances.json: for scripts and benchmarks (direct ssh to an instance's sshd is the floor).
	type row struct {
		Name      string `json:"name"`
		ID        string `json:"id"`
		State     string `json:"state"`
		User      string `json:"user"`
		SSHPort   int    `json:"sshPort"`
		PrivateIP string `json:"privateIp"`
	}
	var rows []row
	for _, in := range l.Instances() {
		rows = append(rows, row{in.Name, in.ID, in.State, in.User, in.SSHPort, in.PrivateIP})
	}
	b, err := json.MarshalIndent(rows, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, InstancesFile), append(b, '\n'), 0o600)
}

// commonUser is the OS user of every instance, or "" when they differ.
func commonUser(ins []lab.InstanceInfo) string {
	u := ""
	for i, in := range ins {
		if i > 0 && in.User != u {
			return ""
		}
		u = in.User
	}
	return u
}

func sshQuote(s string) string {
	if strings.ContainsAny(s, " \t\"") {
		return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
	}
	return s
}

// running reports the pid of a live lab in dir.
func running(dir string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(dir, PidFile))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return pid, false
	}
	return pid, true
}

func downCmd(stdout io.Writer) *cobra.Command {
	var dir string
	var wait time.Duration
	c := &cobra.Command{
		Use:   "down --dir D",
		Short: "Stop the lab running in D and every process it started",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usageErr("--dir is required", "devgate-lab down --dir /tmp/devgate-lab")
			}
			pid, alive := running(dir)
			if !alive {
				killSSHDs(dir) // a lab killed with -9 leaves its sshds behind
				fmt.Fprintf(stdout, "no lab running in %s\n", dir)
				return nil
			}
			if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
				return fmt.Errorf("stop lab pid %d: %w", pid, err)
			}
			deadline := time.Now().Add(wait)
			for time.Now().Before(deadline) {
				if _, alive := running(dir); !alive {
					killSSHDs(dir)
					fmt.Fprintf(stdout, "devgate-lab in %s stopped\n", dir)
					return nil
				}
				time.Sleep(50 * time.Millisecond)
			}
			_ = syscall.Kill(pid, syscall.SIGKILL)
			killSSHDs(dir)
			os.Remove(filepath.Join(dir, PidFile))
			fmt.Fprintf(stdout, "devgate-lab in %s killed after %s\n", dir, wait)
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "the lab's state directory")
	c.Flags().DurationVar(&wait, "wait", 10*time.Second, "how long to wait before killing")
	return c
}

// killSSHDs stops sshd processes recorded in dir/instances/*/sshd.pid.
func killSSHDs(dir string) {
	pids, _ := filepath.Glob(filepath.Join(dir, "instances", "*", "sshd.pid"))
	for _, p := range pids {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			_ = syscall.Kill(-pid, syscall.SIGTERM) // its process group
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
		os.Remove(p)
	}
}

func envCmd(stdout io.Writer) *cobra.Command {
	var dir string
	c := &cobra.Command{
		Use:   "env --dir D",
		Short: "Print the environment of the lab in D (eval \"$(devgate-lab env --dir D)\")",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usageErr("--dir is required", "devgate-lab env --dir /tmp/devgate-lab")
			}
			if _, alive := running(dir); !alive {
				return fmt.Errorf("no lab running in %s; start one with `devgate-lab up --dir %s`", dir, dir)
			}
			b, err := os.ReadFile(filepath.Join(dir, EnvFile))
			if err != nil {
				return err
			}
			_, err = stdout.Write(b)
			return err
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "the lab's state directory")
	return c
}
