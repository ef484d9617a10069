// Package awsapi is devgate's one door to the AWS SDK: it loads the
// configuration (profile, region, AWS_ENDPOINT_URL, the standard retryer
// with more attempts for throttling), lists instances with their SSM agent
// status, resolves a target (instance id, alias or Name tag, cached a few
// minutes) and classifies SDK errors into exitcode classes with a fix
// (errors.go: the one table of AWS failures).
//
// It does not start instances, push keys or open sessions (internal/tunnel
// does), and prints nothing.
package awsapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"

	"github.com/devgate/devgate/internal/exitcode"
)

// Option tunes Load.
type Option func(*loadOptions)

type loadOptions struct {
	appID string
	log   *slog.Logger
	lo    []func(*awsconfig.LoadOptions) error
	wrap  []func(aws.CredentialsProvider) aws.CredentialsProvider
}

// WithCredentialsWrapper wraps the SDK's credential provider (package creds
// caches an MFA role's credentials this way).
func WithCredentialsWrapper(w func(aws.CredentialsProvider) aws.CredentialsProvider) Option {
	return func(o *loadOptions) { o.wrap = append(o.wrap, w) }
}

// WithAppID sets the SDK application id "devgate/<version>" on every call;
// the SDK writes it into the User-Agent as "app/devgate-<version>" ('/' is
// not a token character), which CloudTrail records as userAgent.
func WithAppID(version string) Option {
	return func(o *loadOptions) { o.appID = "devgate/" + version }
}

// WithLogger sends what the SDK logs (retries, the IMDS fallback warning…) to
// log. Without it the SDK logs nothing: its lines never reach the terminal.
func WithLogger(log *slog.Logger) Option {
	return func(o *loadOptions) { o.log = log }
}

// WithSDKOptions passes load options through to the SDK (credential
// providers built by package creds).
func WithSDKOptions(lo ...func(*awsconfig.LoadOptions) error) Option {
	return func(o *loadOptions) { o.lo = append(o.lo, lo...) }
}

// ProfileName is the profile Load uses: profile, else $AWS_PROFILE, else "default".
func ProfileName(profile string) string {
	if profile != "" {
		return profile
	}
	if p := os.Getenv("AWS_PROFILE"); p != "" {
		return p
	}
	return "default"
}

// Load loads the SDK configuration (AWS_ENDPOINT_URL, AWS_CA_BUNDLE and the
// profile's ca_bundle are honoured) with a standard retryer that rides out
// throttling. Credential failures surface as *CredentialsError (inside the
// SDK's signing error) naming the profile, so Classify can tell "none found"
// from "SSO login needed" from "rejected".
func Load(ctx context.Context, profile, region string, opts ...Option) (aws.Config, error) {
	var o loadOptions
	for _, f := range opts {
		f(&o)
	}
	var lo []func(*awsconfig.LoadOptions) error
	if profile != "" {
		lo = append(lo, awsconfig.WithSharedConfigProfile(profile))
	}
	if region != "" {
		lo = append(lo, awsconfig.WithRegion(region))
	}
	if o.appID != "" {
		lo = append(lo, awsconfig.WithAppID(o.appID))
	}
	var logger logging.Logger = logging.Nop{}
	if o.log != nil {
		log := o.log
		logger = logging.LoggerFunc(func(c logging.Classification, format string, v ...any) {
			lvl := slog.LevelDebug
			if c == logging.Warn {
				lvl = slog.LevelWarn
			}
			log.Log(context.Background(), lvl, "aws sdk: "+fmt.Sprintf(format, v...))
		})
	}
	lo = append(lo, awsconfig.WithLogger(logger))
	lo = append(lo, awsconfig.WithRetryer(func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 8
			o.MaxBackoff = 10 * time.Second
			// An untrusted certificate does not become trusted by retrying.
			o.Retryables = append([]retry.IsErrorRetryable{retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
				if _, ok := tlsTrust(err); ok {
					return aws.FalseTernary
				}
				return aws.UnknownTernary
			})}, o.Retryables...)
		})
	}))
	lo = append(lo, o.lo...)
	name := ProfileName(profile)
	cfg, err := awsconfig.LoadDefaultConfig(ctx, lo...)
	if err != nil {
		var nx awsconfig.SharedConfigProfileNotExistError
		if errors.As(err, &nx) {
			return cfg, exitcode.Wrap(err, exitcode.Credentials, "check --profile / AWS_PROFILE against the profiles in ~/.aws/config (aws configure list-profiles)",
				"there is no profile %s", name)
		}
		if c := credentialsCause(err, name); c != nil {
			return cfg, classifyCredentials(err, c)
		}
		return cfg, exitcode.Wrap(err, exitcode.Credentials, "check --profile and ~/.aws/config", "cannot load AWS configuration")
	}
	if cfg.Region == "" {
		return cfg, exitcode.New(exitcode.Region, "pass --region or set AWS_REGION", "no AWS region")
	}
	if cfg.Credentials != nil {
		for _, w := range o.wrap {
			cfg.Credentials = w(cfg.Credentials)
		}
		cfg.Credentials = &credsProvider{inner: cfg.Credentials, profile: name}
	}
	cfg.APIOptions = append(cfg.APIOptions, withOrigin(originOf(cfg, profile)))
	return cfg, nil
}

// credsProvider annotates the failures of the SDK's credential chain with
// what they mean for the user (*CredentialsError), by the provider's source
// and the SDK's typed errors.
type credsProvider struct {
	inner   aws.CredentialsProvider
	profile string
}

func (p *credsProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := p.inner.Retrieve(ctx)
	if err != nil {
		return c, &CredentialsError{Kind: p.kind(err), Profile: p.profile, Err: err}
	}
	return c, nil
}

// ProviderSources passes the SDK's credential-source metrics through.
func (p *credsProvider) ProviderSources() []aws.CredentialSource {
	if s, ok := p.inner.(aws.CredentialProviderSource); ok {
		return s.ProviderSources()
	}
	return nil
}

func (p *credsProvider) kind(err error) CredentialsKind {
	var ce *CredentialsError
	if errors.As(err, &ce) {
		return ce.Kind
	}
	if c := credentialsCause(err, p.profile); c != nil {
		return c.Kind
	}
	var srcs []aws.CredentialSource
	if s, ok := p.inner.(aws.CredentialProviderSource); ok {
		srcs = s.ProviderSources()
	}
	// The chain fell through to the instance role: nothing was configured.
	if len(srcs) == 1 && srcs[0] == aws.CredentialSourceIMDS {
		return CredsNotFound
	}
	for _, s := range srcs {
		switch s {
		case aws.CredentialSourceSSO, aws.CredentialSourceSSOLegacy, aws.CredentialSourceProfileSSO, aws.CredentialSourceProfileSSOLegacy:
			var ae smithy.APIError
			if errors.As(err, &ae) {
				// The portal refused the token (GetRoleCredentials: UnauthorizedException).
				if ae.ErrorCode() == "UnauthorizedException" {
					return CredsSSOLogin
				}
				return CredsUnavailable
			}
			if isNetwork(err) {
				return CredsUnavailable
			}
			// The bearer-token provider of an sso_session profile failed
			// before any call: the cached token is missing or expired and
			// cannot be refreshed.
			return CredsSSOLogin
		}
	}
	return CredsUnavailable
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
	PrivateDNS   string     `json:"privateDns,omitempty"`
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
					PrivateIP: aws.ToString(i.PrivateIpAddress), PrivateDNS: aws.ToString(i.PrivateDnsName), LaunchTime: i.LaunchTime}
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

// InstanceIDRe matches instance ids (EC2 and hybrid managed instances).
var InstanceIDRe = regexp.MustCompile(`^(i|mi)-[0-9a-f]{8,17}$`)
