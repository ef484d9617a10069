// Package awsapi is devgate's one door to the AWS SDK: it loads the
// configuration (profile, region, AWS_ENDPOINT_URL, the standard retryer
// with more attempts for throttling), lists instances with their SSM agent
// status, resolves a target (instance id, alias or Name tag, cached a few
// minutes) and classifies SDK errors into exitcode classes with a fix.
//
// It does not start instances, push keys or open sessions (internal/tunnel
// does), and prints nothing.
package awsapi

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/devgate/devgate/internal/exitcode"
)

// Load loads the SDK configuration (AWS_ENDPOINT_URL is honoured) with a
// standard retryer that rides out throttling.
func Load(ctx context.Context, profile, region string) (aws.Config, error) {
	var lo []func(*awsconfig.LoadOptions) error
	if profile != "" {
		lo = append(lo, awsconfig.WithSharedConfigProfile(profile))
	}
	if region != "" {
		lo = append(lo, awsconfig.WithRegion(region))
	}
	lo = append(lo, awsconfig.WithRetryer(func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 8
			o.MaxBackoff = 10 * time.Second
		})
	}))
	cfg, err := awsconfig.LoadDefaultConfig(ctx, lo...)
	if err != nil {
		return cfg, exitcode.Wrap(err, exitcode.Credentials, "check --profile and ~/.aws/config", "cannot load AWS configuration")
	}
	if cfg.Region == "" {
		return cfg, exitcode.New(exitcode.Region, "pass --region or set AWS_REGION", "no AWS region")
	}
	return cfg, nil
}

// Instance is one instance with its SSM agent status (a line of `devgate ls`).
type Instance struct {
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

// Describe lists instances (all states with all, else not
// terminated) with their SSM agent status; ids limits the listing.
func Describe(ctx context.Context, cfg aws.Config, all bool, ids []string, now time.Time) ([]Instance, error) {
	in := &ec2.DescribeInstancesInput{InstanceIds: ids}
	if !all {
		in.Filters = []ec2types.Filter{{Name: aws.String("instance-state-name"),
			Values: []string{"pending", "running", "stopping", "stopped", "shutting-down"}}}
	}
	return describe(ctx, cfg, in, now)
}

func describe(ctx context.Context, cfg aws.Config, in *ec2.DescribeInstancesInput, now time.Time) ([]Instance, error) {
	var rows []Instance
	p := ec2.NewDescribeInstancesPaginator(ec2.NewFromConfig(cfg), in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, Classify(err, "ec2:DescribeInstances")
		}
		for _, r := range page.Reservations {
			for _, i := range r.Instances {
				row := Instance{ID: aws.ToString(i.InstanceId), Type: string(i.InstanceType),
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
		agents, err := AgentStatus(ctx, cfg, rows)
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

func AgentStatus(ctx context.Context, cfg aws.Config, rows []Instance) (map[string]ssmtypes.InstanceInformation, error) {
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
				return nil, Classify(err, "ssm:DescribeInstanceInformation")
			}
			for _, ii := range page.InstanceInformationList {
				out[aws.ToString(ii.InstanceId)] = ii
			}
		}
	}
	return out, nil
}

// Classify turns an SDK error into a user-facing one.
func Classify(err error, action string) error {
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

// InstanceIDRe matches instance ids (EC2 and hybrid managed instances).
var InstanceIDRe = regexp.MustCompile(`^(i|mi)-[0-9a-f]{8,17}$`)
