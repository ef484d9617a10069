package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/spf13/cobra"

	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/sshconfig"
)

func init() { register(newLsCommand) }

// awsFlags are the AWS selection flags of ls, start, stop and doctor.
type awsFlags struct{ profile, region string }

func (f *awsFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.profile, "profile", "", "AWS profile (default: the SDK's default chain)")
	cmd.Flags().StringVar(&f.region, "region", "", "AWS region (default: from the profile/environment)")
}

// loadAWS loads the SDK configuration (AWS_ENDPOINT_URL is honoured).
func loadAWS(ctx context.Context, profile, region string) (aws.Config, error) {
	var lo []func(*awsconfig.LoadOptions) error
	if profile != "" {
		lo = append(lo, awsconfig.WithSharedConfigProfile(profile))
	}
	if region != "" {
		lo = append(lo, awsconfig.WithRegion(region))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, lo...)
	if err != nil {
		return cfg, exitcode.Wrap(err, exitcode.Credentials, "check --profile and ~/.aws/config", "cannot load AWS configuration")
	}
	if cfg.Region == "" {
		return cfg, exitcode.New(exitcode.Region, "pass --region or set AWS_REGION", "no AWS region")
	}
	return cfg, nil
}

// instanceRow is one line of `devgate ls` (and its JSON form).
type instanceRow struct {
	Name         string     `json:"name"`
	ID           string     `json:"id"`
	State        string     `json:"state"`
	Type         string     `json:"type"`
	Agent        string     `json:"agent"` // Online, ConnectionLost, Inactive, or "" when unknown to SSM
	AgentVersion string     `json:"agentVersion,omitempty"`
	PrivateIP    string     `json:"privateIp,omitempty"`
	LaunchTime   *time.Time `json:"launchTime,omitempty"`
	UptimeSec    int64      `json:"uptimeSeconds,omitempty"` // running only
}

// describeInstances lists instances (all states with all, else not
// terminated) with their SSM agent status; ids limits the listing.
func describeInstances(ctx context.Context, cfg aws.Config, all bool, ids []string, now time.Time) ([]instanceRow, error) {
	in := &ec2.DescribeInstancesInput{InstanceIds: ids}
	if !all {
		in.Filters = []ec2types.Filter{{Name: aws.String("instance-state-name"),
			Values: []string{"pending", "running", "stopping", "stopped", "shutting-down"}}}
	}
	var rows []instanceRow
	p := ec2.NewDescribeInstancesPaginator(ec2.NewFromConfig(cfg), in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, classifyAWS(err, "ec2:DescribeInstances")
		}
		for _, r := range page.Reservations {
			for _, i := range r.Instances {
				row := instanceRow{ID: aws.ToString(i.InstanceId), Type: string(i.InstanceType),
					PrivateIP: aws.ToString(i.PrivateIpAddress), LaunchTime: i.LaunchTime}
				if i.State != nil {
					row.State = string(i.State.Name)
				}
				for _, t := range i.Tags {
					if aws.ToString(t.Key) == "Name" {
						row.Name = aws.ToString(t.Value)
					}
				}
				if row.State == "running" && i.LaunchTime != nil {
					row.UptimeSec = int64(now.Sub(*i.LaunchTime).Seconds())
				}
				rows = append(rows, row)
			}
		}
	}
	if len(rows) > 0 {
		agents, err := agentStatus(ctx, cfg, rows)
		if err != nil {
			return nil, err
		}
		for i := range rows {
			if a, ok := agents[rows[i].ID]; ok {
				rows[i].Agent, rows[i].AgentVersion = string(a.PingStatus), aws.ToString(a.AgentVersion)
			}
		}
	}
	sort.SliceStable(rows, func(i, j int) bool {
		ri, rj := rows[i].State == "running", rows[j].State == "running"
		if ri != rj {
			return ri
		}
		if rows[i].Name != rows[j].Name {
			return rows[i].Name < rows[j].Name
		}
		return rows[i].ID < rows[j].ID
	})
	return rows, nil
}

func agentStatus(ctx context.Context, cfg aws.Config, rows []instanceRow) (map[string]ssmtypes.InstanceInformation, error) {
	out := map[string]ssmtypes.InstanceInformation{}
	client := ssm.NewFromConfig(cfg)
	for start := 0; start < len(rows); start += 50 {
		var ids []string
		for _, r := range rows[start:min(start+50, len(rows))] {
			ids = append(ids, r.ID)
		}
		p := ssm.NewDescribeInstanceInformationPaginator(client, &ssm.DescribeInstanceInformationInput{
			Filters: []ssmtypes.InstanceInformationStringFilter{{Key: aws.String("InstanceIds"), Values: ids}},
		})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, classifyAWS(err, "ssm:DescribeInstanceInformation")
			}
			for _, ii := range page.InstanceInformationList {
				out[aws.ToString(ii.InstanceId)] = ii
			}
		}
	}
	return out, nil
}

// classifyAWS turns an SDK error into a user-facing one.
func classifyAWS(err error, action string) error {
	s := err.Error()
	switch {
	case strings.Contains(s, "AccessDenied") || strings.Contains(s, "UnauthorizedOperation") || strings.Contains(s, "not authorized"):
		return exitcode.Wrap(err, exitcode.Permission, "grant "+action+" to your IAM identity", "%s was denied", action)
	case strings.Contains(s, "InvalidClientTokenId") || strings.Contains(s, "SignatureDoesNotMatch") || strings.Contains(s, "AuthFailure") ||
		strings.Contains(s, "ExpiredToken") || strings.Contains(s, "failed to retrieve credentials") || strings.Contains(s, "no EC2 IMDS role"):
		return exitcode.Wrap(err, exitcode.Credentials, "check your AWS credentials (aws sts get-caller-identity), or run aws sso login", "AWS rejected the credentials")
	case strings.Contains(s, "InvalidInstanceID"):
		return exitcode.Wrap(err, exitcode.NotFound, "run `devgate ls` to see the instances", "instance not found")
	case strings.Contains(s, "request send failed") || strings.Contains(s, "dial tcp") || strings.Contains(s, "no such host"):
		return exitcode.Wrap(err, exitcode.Generic, "check network access to the AWS endpoints (proxy, VPN, AWS_ENDPOINT_URL)", "cannot reach AWS for %s", action)
	case strings.Contains(s, "Throttling") || strings.Contains(s, "RequestLimitExceeded"):
		return exitcode.Wrap(err, exitcode.Throttled, "wait a minute and retry", "AWS is throttling %s", action)
	}
	return fmt.Errorf("%s: %w", action, err)
}

var instanceIDRe = regexp.MustCompile(`^(i|mi)-[0-9a-f]{8,17}$`)

// resolveTarget maps a target (instance id, alias from the managed ssh
// config, or Name tag) to exactly one instance.
func resolveTarget(ctx context.Context, cfg aws.Config, target string, now time.Time) (instanceRow, error) {
	id := ""
	if instanceIDRe.MatchString(target) {
		id = target
	} else if home, _, err := homeDir(); err == nil {
		if b, err := os.ReadFile(sshconfig.ManagedPath(home)); err == nil {
			id = sshconfig.ManagedHosts(b)[target]
		}
	}
	if id != "" {
		rows, err := describeInstances(ctx, cfg, true, []string{id}, now)
		if err != nil {
			return instanceRow{}, err
		}
		if len(rows) != 1 {
			return instanceRow{}, exitcode.New(exitcode.NotFound, "run `devgate ls` to see the instances", "instance %s not found", id)
		}
		return rows[0], nil
	}
	rows, err := describeInstances(ctx, cfg, false, nil, now)
	if err != nil {
		return instanceRow{}, err
	}
	var match []instanceRow
	for _, r := range rows {
		if r.Name == target {
			match = append(match, r)
		}
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		return instanceRow{}, exitcode.New(exitcode.NotFound, "use an instance id, a Name tag or an alias from `devgate setup`; `devgate ls` lists them", "no instance named %q", target)
	}
	var ids []string
	for _, m := range match {
		ids = append(ids, m.ID)
	}
	return instanceRow{}, exitcode.New(exitcode.NotFound, "use the instance id instead", "%d instances are named %q: %s", len(match), target, strings.Join(ids, ", "))
}

func newLsCommand(io IO) *cobra.Command {
	var af awsFlags
	var asJSON, all bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List instances with their state and SSM agent status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadAWS(cmd.Context(), af.profile, af.region)
			if err != nil {
				return err
			}
			rows, err := describeInstances(cmd.Context(), cfg, all, nil, time.Now())
			if err != nil {
				return err
			}
			if asJSON {
				if rows == nil {
					rows = []instanceRow{}
				}
				enc := json.NewEncoder(io.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			return writeTable(io, rows)
		},
	}
	af.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (for scripts)")
	cmd.Flags().BoolVar(&all, "all", false, "include terminated instances")
	return cmd
}

func writeTable(io IO, rows []instanceRow) error {
	if len(rows) == 0 {
		fmt.Fprintln(io.ErrOut, "devgate: no instances")
		return nil
	}
	tw := tabwriter.NewWriter(io.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tSTATE\tTYPE\tAGENT\tPRIVATE IP\tUPTIME")
	for _, r := range rows {
		up := "-"
		if r.State == "running" && r.LaunchTime != nil {
			up = humanUptime(r.UptimeSec)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", dash(r.Name), r.ID, r.State, dash(r.Type), dash(r.Agent), dash(r.PrivateIP), up)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func humanUptime(sec int64) string {
	d := time.Duration(sec) * time.Second
	switch {
	case d >= 24*time.Hour:
		return fmt.Sprintf("%dd%dh", d/(24*time.Hour), (d%(24*time.Hour))/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh%dm", d/time.Hour, (d%time.Hour)/time.Minute)
	}
	return fmt.Sprintf("%dm", d/time.Minute)
}
