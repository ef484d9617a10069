package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2instanceconnect"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/devgate/devgate/internal/awsapi"
	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/tunnel"
)

// SDK implements AWS with the AWS SDK: cfg's HTTP client is wrapped to
// record the Date header of the last response (the clock-skew check), and
// targets resolve with resolve (aliases, Name tags, addresses).
type SDK struct {
	cfg     aws.Config
	resolve awsapi.ResolveOptions
	dates   *dateRecorder
}

// NewSDK returns the SDK-backed AWS of doctor.
func NewSDK(cfg aws.Config, resolve awsapi.ResolveOptions) *SDK {
	base := cfg.HTTPClient
	if base == nil {
		base = awshttp.NewBuildableClient()
	}
	dr := &dateRecorder{next: base}
	cfg.HTTPClient = dr
	return &SDK{cfg: cfg, resolve: resolve, dates: dr}
}

// dateRecorder remembers the Date header of the last AWS response.
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

func (s *SDK) Region() string { return s.cfg.Region }

func (s *SDK) ServerDate() time.Time {
	s.dates.mu.Lock()
	defer s.dates.mu.Unlock()
	return s.dates.last
}

func (s *SDK) Identity(ctx context.Context) (string, error) {
	out, err := sts.NewFromConfig(s.cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", awsapi.Classify(err, "sts:GetCallerIdentity")
	}
	return aws.ToString(out.Arn), nil
}

func (s *SDK) Probe(ctx context.Context, action, id string) error {
	var err error
	switch action {
	case "ec2:DescribeInstances":
		_, err = ec2.NewFromConfig(s.cfg).DescribeInstances(ctx, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)})
	case "ssm:DescribeInstanceInformation":
		_, err = ssm.NewFromConfig(s.cfg).DescribeInstanceInformation(ctx, &ssm.DescribeInstanceInformationInput{MaxResults: aws.Int32(5)})
	case "ec2:StartInstances":
		_, err = ec2.NewFromConfig(s.cfg).StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}, DryRun: aws.Bool(true)})
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "DryRunOperation" {
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

func (s *SDK) Instance(ctx context.Context, target string) (string, string, error) {
	t, err := awsapi.Resolve(ctx, s.cfg, target, s.resolve)
	if err != nil {
		return "", "", err
	}
	rows, err := awsapi.Describe(ctx, s.cfg, true, []string{t.ID}, time.Now())
	if err != nil {
		return "", "", err
	}
	if len(rows) != 1 {
		return "", "", exitcode.New(exitcode.NotFound, "run `devgate ls` to see the instances", "instance %s not found", t.ID)
	}
	return rows[0].ID, rows[0].State, nil
}

func (s *SDK) Agent(ctx context.Context, id string) (string, string, error) {
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

func (s *SDK) SSHBanner(ctx context.Context, id string) (string, error) {
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

func (s *SDK) PushKey(ctx context.Context, id, osUser, pub string) error {
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
