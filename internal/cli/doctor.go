package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2instanceconnect"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/spf13/cobra"

	"github.com/devgate/devgate/internal/awsapi"
	"github.com/devgate/devgate/internal/doctor"
	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/sshconfig"
	"github.com/devgate/devgate/internal/sshkey"
	"github.com/devgate/devgate/internal/tunnel"
	"github.com/devgate/devgate/internal/vscode"
)

func init() { register(newDoctorCommand) }

func newDoctorCommand(io IO) *cobra.Command {
	var af awsFlags
	var asJSON bool
	var userFlag, key, prefix string
	cmd := &cobra.Command{
		Use:   "doctor [target]",
		Short: "Check everything devgate needs and say how to fix what is wrong",
		Long: `doctor runs each check and prints one line per check, ✓ or ✗ with the fix:
AWS credentials and identity, region, clock skew against AWS, the permissions
devgate needs (probed with harmless calls), and with a target: the instance,
its SSM agent, a test EC2 Instance Connect key push; locally: the ssh client
version, ssh -G <alias> resolving through the Include, ControlPath length,
key permissions, VS Code settings. Exits non-zero when any check fails.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target := ""
			if len(args) == 1 {
				target = args[0]
			}
			results := runDoctor(cmd.Context(), af, target, osUser(userFlag), key, prefix)
			if asJSON {
				enc := json.NewEncoder(io.Out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(results); err != nil {
					return err
				}
			} else {
				for _, r := range results {
					mark := "✓"
					switch {
					case r.Skipped:
						mark = "–"
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
			}
			if doctor.Failed(results) {
				n := 0
				for _, r := range results {
					if !r.OK && !r.Skipped {
						n++
					}
				}
				return exitcode.New(exitcode.Generic, "fix the ✗ lines above, then run `devgate doctor` again", "%d check(s) failed", n)
			}
			return nil
		},
	}
	af.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the results as JSON")
	cmd.Flags().StringVar(&userFlag, "user", "", "OS user for the test key push (default $DEVGATE_USER, else ec2-user)")
	cmd.Flags().StringVar(&key, "key", "", "private key (default ~/.ssh/devgate/id_ed25519)")
	cmd.Flags().StringVar(&prefix, "prefix", "devbox", "alias prefix used by setup")
	return cmd
}

func runDoctor(ctx context.Context, af awsFlags, target, osUser, key, prefix string) []doctor.Result {
	home, _, err := homeDir()
	if err != nil {
		return []doctor.Result{{Name: "home directory", Detail: err.Error(), Fix: "set HOME"}}
	}
	if key == "" {
		key = sshkey.DefaultPath(home)
	}
	pub := ""
	if p, err := sshkey.LoadPublic(key); err == nil {
		pub = p.AuthorizedKey
	}

	var checks []doctor.Check
	dr := &dateRecorder{}
	cfg, cfgErr := awsapi.Load(ctx, af.profile, af.region)
	if cfgErr != nil {
		checks = append(checks, doctor.Check{Name: "AWS configuration", Run: func(context.Context) doctor.Result {
			return doctor.Result{Detail: cfgErr.Error(), Fix: exitcode.HintOf(cfgErr)}
		}})
	} else {
		base := cfg.HTTPClient
		if base == nil {
			base = awshttp.NewBuildableClient()
		}
		dr.next = base
		cfg.HTTPClient = dr
		checks = append(checks, doctor.AWSChecks(&sdkDoctor{cfg: cfg, dates: dr}, time.Now, target, osUser, pub)...)
	}

	checks = append(checks, doctor.SSHVersion("ssh"), doctor.KeyPermissions(key))
	alias := target
	managed, _ := os.ReadFile(sshconfig.ManagedPath(home))
	hosts := sshconfig.ManagedHosts(managed)
	if alias == "" || !strings.HasPrefix(alias, prefix+"-") {
		for a, id := range hosts {
			if alias == "" || id == target {
				alias = a
				break
			}
		}
	}
	if alias == "" {
		alias = prefix + "-example"
	}
	sc := &doctor.SSHConfig{Alias: alias, GOOS: runtime.GOOS, ConfigFile: sshConfigFile(home)}
	checks = append(checks, sc.Resolves(), sc.ControlPathLength())
	var products []vscode.Product // only the installed ones (their config directory exists)
	for _, p := range vscode.SettingsPaths(runtime.GOOS, home, os.Getenv("APPDATA")) {
		if _, err := os.Stat(filepath.Dir(filepath.Dir(p.Path))); err == nil {
			products = append(products, p)
		}
	}
	checks = append(checks, doctor.VSCodeSettings(products, os.ReadFile, vscode.DefaultConnectTimeout, sshconfig.ManagedAliases(managed)))
	return doctor.Run(ctx, checks)
}

// sshConfigFile is the ssh config doctor resolves aliases with:
// $DEVGATE_SSH_CONFIG (devgate-lab's D/env sets it to D/ssh_config), else ~/.ssh/config.
func sshConfigFile(home string) string {
	if p := os.Getenv("DEVGATE_SSH_CONFIG"); p != "" {
		return p
	}
	return sshconfig.UserConfigPath(home)
}

// dateRecorder remembers the Date header of the last AWS response (for the
// clock-skew check).
type dateRecorder struct {
	next aws.HTTPClient
	mu   sync.Mutex
	last time.Time
}

func (d *dateRecorder) Do(r *http.Request) (*http.Response, error) {
	resp, err := d.next.Do(r)
	if resp != nil {
		if t, perr := http.ParseTime(resp.Header.Get("Date")); perr == nil {
			d.mu.Lock()
			d.last = t
			d.mu.Unlock()
		}
	}
	return resp, err
}

// sdkDoctor implements doctor.AWS with the SDK.
type sdkDoctor struct {
	cfg   aws.Config
	dates *dateRecorder
}

func (s *sdkDoctor) Region() string { return s.cfg.Region }

func (s *sdkDoctor) ServerDate() time.Time {
	s.dates.mu.Lock()
	defer s.dates.mu.Unlock()
	return s.dates.last
}

func (s *sdkDoctor) Identity(ctx context.Context) (string, error) {
	out, err := sts.NewFromConfig(s.cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", awsapi.Classify(err, "sts:GetCallerIdentity")
	}
	return aws.ToString(out.Arn), nil
}

func (s *sdkDoctor) Probe(ctx context.Context, action, id string) error {
	var err error
	switch action {
	case "ec2:DescribeInstances":
		_, err = ec2.NewFromConfig(s.cfg).DescribeInstances(ctx, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)})
	case "ssm:DescribeInstanceInformation":
		_, err = ssm.NewFromConfig(s.cfg).DescribeInstanceInformation(ctx, &ssm.DescribeInstanceInformationInput{MaxResults: aws.Int32(5)})
	case "ec2:StartInstances":
		_, err = ec2.NewFromConfig(s.cfg).StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}, DryRun: aws.Bool(true)})
		if err != nil && strings.Contains(err.Error(), "DryRunOperation") {
			err = nil // "would have succeeded"
		}
	default:
		return fmt.Errorf("doctor: no probe for %s", action)
	}
	if err != nil {
		return awsapi.Classify(err, action)
	}
	return nil
}

func (s *sdkDoctor) Instance(ctx context.Context, target string) (string, string, error) {
	row, err := resolveInstance(ctx, s.cfg, target)
	if err != nil {
		return "", "", err
	}
	return row.ID, row.State, nil
}

func (s *sdkDoctor) Agent(ctx context.Context, id string) (string, string, error) {
	m, err := awsapi.AgentStatus(ctx, s.cfg, []awsapi.Instance{{ID: id}})
	if err != nil {
		return "", "", err
	}
	ii, ok := m[id]
	if !ok {
		return "", "", nil
	}
	return string(ii.PingStatus), aws.ToString(ii.AgentVersion), nil
}

func (s *sdkDoctor) SSHBanner(ctx context.Context, id string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := tunnel.Dial(ctx, s.cfg, tunnel.Options{Target: id, Port: 22, NoStart: true, Timeout: 30 * time.Second})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	line := make([]byte, 0, 256)
	b := make([]byte, 1)
	for len(line) < 255 {
		if _, err := io.ReadFull(conn, b); err != nil {
			return string(line), err
		}
		if b[0] == '\n' {
			break
		}
		line = append(line, b[0])
	}
	return strings.TrimRight(string(line), "\r"), nil
}

func (s *sdkDoctor) PushKey(ctx context.Context, id, osUser, pub string) error {
	if pub == "" {
		return exitcode.New(exitcode.Config, "run `devgate setup` to create devgate's key", "no public key to push")
	}
	out, err := ec2instanceconnect.NewFromConfig(s.cfg).SendSSHPublicKey(ctx, &ec2instanceconnect.SendSSHPublicKeyInput{
		InstanceId: aws.String(id), InstanceOSUser: aws.String(osUser), SSHPublicKey: aws.String(pub),
	})
	if err != nil {
		return awsapi.Classify(err, "ec2-instance-connect:SendSSHPublicKey")
	}
	if !out.Success {
		return errors.New("SendSSHPublicKey returned Success=false")
	}
	return nil
}
