package lab_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2instanceconnect"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"golang.org/x/crypto/ssh"

	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labtest"
)

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestSDKCalls(t *testing.T) {
	l := labtest.Start(t, lab.Options{})
	ctx := context.Background()
	cfg := l.AWSConfig()

	id, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("GetCallerIdentity: %v", err)
	}
	if aws.ToString(id.Account) != lab.DefaultAccount {
		t.Fatalf("account %q", aws.ToString(id.Account))
	}

	e := ec2.NewFromConfig(cfg)
	out, err := e.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{{Name: aws.String("tag:Name"), Values: []string{"gpu2"}}}})
	if err != nil {
		t.Fatalf("DescribeInstances: %v", err)
	}
	if len(out.Reservations) != 1 || len(out.Reservations[0].Instances) != 1 {
		t.Fatalf("want one instance, got %+v", out.Reservations)
	}
	gpu2 := out.Reservations[0].Instances[0]
	if gpu2.State.Name != ec2types.InstanceStateNameStopped || aws.ToString(gpu2.PrivateIpAddress) == "" || gpu2.LaunchTime == nil || gpu2.InstanceType == "" {
		t.Fatalf("gpu2: %+v", gpu2)
	}
	_, err = e.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}})
	if apiCode(err) != "InvalidInstanceID.NotFound" {
		t.Fatalf("unknown id: %v", err)
	}
	_, err = e.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{*gpu2.InstanceId}, DryRun: aws.Bool(true)})
	if apiCode(err) != "DryRunOperation" {
		t.Fatalf("dry run: %v", err)
	}
	st, err := e.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{*gpu2.InstanceId}})
	if err != nil || st.StartingInstances[0].CurrentState.Name != ec2types.InstanceStateNamePending {
		t.Fatalf("StartInstances: %v %+v", err, st)
	}
	w := ec2.NewInstanceRunningWaiter(e, func(o *ec2.InstanceRunningWaiterOptions) {
		o.MinDelay = 100 * time.Millisecond
		o.MaxDelay = 200 * time.Millisecond
	})
	if err := w.Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{*gpu2.InstanceId}}, 10*time.Second); err != nil {
		t.Fatalf("wait running: %v", err)
	}

	s := ssm.NewFromConfig(cfg)
	deadline := time.Now().Add(5 * time.Second)
	for {
		info, err := s.DescribeInstanceInformation(ctx, &ssm.DescribeInstanceInformationInput{})
		if err != nil {
			t.Fatalf("DescribeInstanceInformation: %v", err)
		}
		online := 0
		for _, ii := range info.InstanceInformationList {
			if ii.PingStatus == "Online" {
				online++
				if strings.Count(aws.ToString(ii.AgentVersion), ".") != 3 {
					t.Fatalf("agent version %q", aws.ToString(ii.AgentVersion))
				}
			}
		}
		if online == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agents not online: %+v", info.InstanceInformationList)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, err = s.StartSession(ctx, &ssm.StartSessionInput{Target: gpu2.InstanceId, DocumentName: aws.String("AWS-Nope")})
	if apiCode(err) != "InvalidDocument" {
		t.Fatalf("bad document: %v", err)
	}
	ss, err := s.StartSession(ctx, &ssm.StartSessionInput{Target: gpu2.InstanceId, DocumentName: aws.String("AWS-StartSSHSession"), Parameters: map[string][]string{"portNumber": {"22"}}})
	if err != nil || !strings.HasPrefix(aws.ToString(ss.StreamUrl), "ws://") || aws.ToString(ss.TokenValue) == "" {
		t.Fatalf("StartSession: %v %+v", err, ss)
	}
	rs, err := s.ResumeSession(ctx, &ssm.ResumeSessionInput{SessionId: ss.SessionId})
	if err != nil || aws.ToString(rs.TokenValue) == "" || aws.ToString(rs.TokenValue) == aws.ToString(ss.TokenValue) {
		t.Fatalf("ResumeSession: %v %+v", err, rs)
	}
	if _, err := s.TerminateSession(ctx, &ssm.TerminateSessionInput{SessionId: ss.SessionId}); err != nil {
		t.Fatalf("TerminateSession: %v", err)
	}
	rs, err = s.ResumeSession(ctx, &ssm.ResumeSessionInput{SessionId: ss.SessionId})
	if err != nil || aws.ToString(rs.TokenValue) != "" {
		t.Fatalf("ResumeSession after end: %v %+v", err, rs)
	}

	if _, err := e.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{*gpu2.InstanceId}}); err != nil {
		t.Fatalf("StopInstances: %v", err)
	}
	_, err = s.StartSession(ctx, &ssm.StartSessionInput{Target: gpu2.InstanceId, DocumentName: aws.String("AWS-StartSSHSession")})
	if apiCode(err) != "TargetNotConnected" {
		t.Fatalf("stopped instance: %v", err)
	}
	l.Deny("ssm:StartSession")
	gpu1, _ := l.Instance("gpu1")
	_, err = s.StartSession(ctx, &ssm.StartSessionInput{Target: aws.String(gpu1.ID), DocumentName: aws.String("AWS-StartSSHSession")})
	if apiCode(err) != "AccessDeniedException" {
		t.Fatalf("denied: %v", err)
	}
}

func TestWrongCredentials(t *testing.T) {
	l := labtest.Start(t, lab.Options{})
	ctx := context.Background()
	ak, _ := l.Credentials()
	cases := []struct {
		name           string
		ak, sk, region string
		sts, ec2, ssm  string
	}{
		{"wrong secret", ak, "wrong", l.Region(), "SignatureDoesNotMatch", "AuthFailure", "InvalidSignatureException"},
		{"unknown key", "AKIAUNKNOWN000000000", "x", l.Region(), "InvalidClientTokenId", "AuthFailure", "UnrecognizedClientException"},
		{"wrong region", ak, "x", "eu-west-1", "SignatureDoesNotMatch", "AuthFailure", "InvalidSignatureException"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := l.AWSConfig()
			cfg.Region = c.region
			cfg.Credentials = credentials.NewStaticCredentialsProvider(c.ak, c.sk, "")
			cfg.RetryMaxAttempts = 1
			_, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
			if apiCode(err) != c.sts {
				t.Errorf("sts: %v", err)
			}
			_, err = ec2.NewFromConfig(cfg).DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
			if apiCode(err) != c.ec2 {
				t.Errorf("ec2: %v", err)
			}
			_, err = ssm.NewFromConfig(cfg).DescribeInstanceInformation(ctx, &ssm.DescribeInstanceInformationInput{})
			if apiCode(err) != c.ssm {
				t.Errorf("ssm: %v", err)
			}
		})
	}
}

// TestAWSCLI drives the lab with AWS CLI v1, a client nobody here wrote.
func TestAWSCLI(t *testing.T) {
	awsBin, err := exec.LookPath("aws")
	if err != nil {
		t.Fatalf("aws CLI not on PATH (CI installs awscli): %v", err)
	}
	l := labtest.Start(t, lab.Options{})
	gpu2, _ := l.Instance("gpu2")
	run := func(env []string, args ...string) (string, error) {
		cmd := exec.Command(awsBin, append(args, "--output", "json")...)
		cmd.Env = append(append(os.Environ(), "HOME="+t.TempDir(), "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_RETRY_MODE=standard", "AWS_MAX_ATTEMPTS=1"), env...)
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	for _, args := range [][]string{
		{"sts", "get-caller-identity"},
		{"ec2", "describe-instances"},
		{"ec2", "start-instances", "--instance-ids", gpu2.ID},
		{"ssm", "describe-instance-information"},
	} {
		out, err := run(l.Env(), args...)
		if err != nil {
			t.Fatalf("aws %v: %v\n%s", args, err, out)
		}
		if !strings.Contains(out, "{") {
			t.Fatalf("aws %v printed no JSON: %s", args, out)
		}
	}
	out, err := run(append(l.Env(), "AWS_SECRET_ACCESS_KEY=wrong"), "sts", "get-caller-identity")
	if err == nil || !strings.Contains(out, "SignatureDoesNotMatch") {
		t.Fatalf("wrong secret: %v %s", err, out)
	}
}

// TestInstanceConnectKeyTTL: a pushed key lets real ssh in within its TTL and not after.
func TestInstanceConnectKeyTTL(t *testing.T) {
	opts := lab.Options{}
	opts.Faults = labtest.Fast()
	opts.Faults.KeyTTL = 4 * time.Second
	l := labtest.Start(t, opts)
	gpu1, _ := l.Instance("gpu1")
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKey(priv, "")
	keyPath := filepath.Join(dir, "id")
	os.WriteFile(keyPath, pem.EncodeToMemory(block), 0o600)
	signer, _ := ssh.NewSignerFromKey(priv)
	pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))

	sshRun := func() (string, error) {
		cmd := exec.Command("ssh", "-F", "/dev/null", "-i", keyPath, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
			"-o", "StrictHostKeyChecking=accept-new", "-o", "UserKnownHostsFile="+filepath.Join(dir, "known_hosts"),
			"-p", strconv.Itoa(gpu1.SSHPort), gpu1.User+"@127.0.0.1", "echo", "ok")
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	if out, err := sshRun(); err == nil {
		t.Fatalf("ssh before any push succeeded: %s", out)
	}
	eic := ec2instanceconnect.NewFromConfig(l.AWSConfig())
	ctx := context.Background()
	_, err := eic.SendSSHPublicKey(ctx, &ec2instanceconnect.SendSSHPublicKeyInput{InstanceId: aws.String(gpu1.ID), InstanceOSUser: aws.String(gpu1.User), SSHPublicKey: aws.String("ssh-ed25519 AAAAnotakey")})
	if apiCode(err) != "InvalidArgsException" {
		t.Fatalf("bad key: %v", err)
	}
	_, err = eic.SendSSHPublicKey(ctx, &ec2instanceconnect.SendSSHPublicKeyInput{InstanceId: aws.String("i-0123456789abcdef0"), InstanceOSUser: aws.String(gpu1.User), SSHPublicKey: aws.String(pub)})
	if apiCode(err) != "EC2InstanceNotFoundException" {
		t.Fatalf("unknown instance: %v", err)
	}
	gpu2, _ := l.Instance("gpu2")
	_, err = eic.SendSSHPublicKey(ctx, &ec2instanceconnect.SendSSHPublicKeyInput{InstanceId: aws.String(gpu2.ID), InstanceOSUser: aws.String(gpu1.User), SSHPublicKey: aws.String(pub)})
	if apiCode(err) != "EC2InstanceStateInvalidException" {
		t.Fatalf("stopped instance: %v", err)
	}
	pushed := time.Now()
	if _, err := eic.SendSSHPublicKey(ctx, &ec2instanceconnect.SendSSHPublicKeyInput{InstanceId: aws.String(gpu1.ID), InstanceOSUser: aws.String(gpu1.User), SSHPublicKey: aws.String(pub)}); err != nil {
		t.Fatalf("push: %v", err)
	}
	out, err := sshRun()
	if err != nil || strings.TrimSpace(out) != "ok" {
		t.Fatalf("ssh within the TTL (%v after the push): %v %s", time.Since(pushed), err, out)
	}
	time.Sleep(time.Until(pushed.Add(opts.Faults.KeyTTL + time.Second)))
	if out, err := sshRun(); err == nil {
		t.Fatalf("ssh after TTL succeeded: %s", out)
	}
}

// TestDefaultUserTagged: an instance whose OS user is left to the lab (the
// account running it) is tagged devgate:user with it when its image's default
// user differs, so devgate setup without DEVGATE_USER (a fleet reached through
// profiles) picks who the lab's sshd lets in; a configured user or tag is left alone.
func TestDefaultUserTagged(t *testing.T) {
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	l := labtest.Start(t, lab.Options{Instances: []lab.InstanceSpec{
		{Name: "dflt"},
		{Name: "own", User: "ubuntu", Image: "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20240423"},
		{Name: "tagged", Tags: map[string]string{"devgate:user": "admin", "team": "ml"}},
		{Name: "img", Image: "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20240423"}, // a mismatch the spec models
	}})
	out, err := ec2.NewFromConfig(l.AWSConfig()).DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			name, u := "", "(none)"
			for _, tg := range in.Tags {
				switch aws.ToString(tg.Key) {
				case "Name":
					name = aws.ToString(tg.Value)
				case "devgate:user":
					u = aws.ToString(tg.Value)
				}
			}
			got[name] = u
		}
	}
	want := map[string]string{"dflt": me.Username, "own": "(none)", "tagged": "admin", "img": "(none)"}
	if me.Username == "ec2-user" {
		want["dflt"] = "(none)" // the image's default already
	}
	for n, u := range want {
		if got[n] != u {
			t.Errorf("%s: devgate:user %q, want %q (all: %v)", n, got[n], u, got)
		}
	}
}
