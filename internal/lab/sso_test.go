package lab_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sso"
	"github.com/aws/aws-sdk-go-v2/service/ssooidc"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labtest"
)

// TestSSODeviceFlow drives the lab's SSO OIDC and portal with the SDK's own
// clients: pending, slow_down when polled too fast, the token after
// approval, role credentials the lab's SigV4 check accepts, and 401 once the
// session is ended.
func TestSSODeviceFlow(t *testing.T) {
	l := labtest.Start(t, lab.Options{Instances: []lab.InstanceSpec{}})
	ctx := context.Background()
	cfg := l.AWSConfig()
	cfg.Credentials = aws.AnonymousCredentials{}
	oidc := ssooidc.NewFromConfig(cfg)
	rc, err := oidc.RegisterClient(ctx, &ssooidc.RegisterClientInput{ClientName: aws.String("t"), ClientType: aws.String("public")})
	if err != nil {
		t.Fatal(err)
	}
	da, err := oidc.StartDeviceAuthorization(ctx, &ssooidc.StartDeviceAuthorizationInput{ClientId: rc.ClientId, ClientSecret: rc.ClientSecret, StartUrl: aws.String("https://x/start")})
	if err != nil || da.Interval != lab.DeviceInterval || aws.ToString(da.UserCode) == "" {
		t.Fatalf("%+v %v", da, err)
	}
	poll := func() (*ssooidc.CreateTokenOutput, error) {
		return oidc.CreateToken(ctx, &ssooidc.CreateTokenInput{ClientId: rc.ClientId, ClientSecret: rc.ClientSecret, DeviceCode: da.DeviceCode,
			GrantType: aws.String("urn:ietf:params:oauth:grant-type:device_code")})
	}
	if _, err := poll(); apiCode(err) != "AuthorizationPendingException" {
		t.Fatalf("before approval: %v", err)
	}
	if _, err := poll(); apiCode(err) != "SlowDownException" {
		t.Fatalf("polled at once again: %v", err)
	}
	if err := l.ApproveDevice(aws.ToString(da.UserCode)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Duration(da.Interval) * time.Second)
	tok, err := poll()
	if err != nil {
		t.Fatal(err)
	}
	portal := sso.NewFromConfig(cfg)
	in := &sso.GetRoleCredentialsInput{AccessToken: tok.AccessToken, AccountId: aws.String(lab.DefaultAccount), RoleName: aws.String("Dev")}
	rcreds, err := portal.GetRoleCredentials(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	c := l.AWSConfig()
	rk := rcreds.RoleCredentials
	c.Credentials = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: *rk.AccessKeyId, SecretAccessKey: *rk.SecretAccessKey, SessionToken: *rk.SessionToken}, nil
	})
	id, err := sts.NewFromConfig(c).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil || aws.ToString(id.Arn) != "arn:aws:sts::"+lab.DefaultAccount+":assumed-role/AWSReservedSSO_Dev/devgate-lab-user" {
		t.Fatalf("identity with the role credentials: %v %v", id, err)
	}
	// The session token is part of the credentials.
	c.Credentials = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: *rk.AccessKeyId, SecretAccessKey: *rk.SecretAccessKey}, nil
	})
	if _, err := sts.NewFromConfig(c).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); apiCode(err) != "InvalidClientTokenId" {
		t.Fatalf("without the session token: %v", err)
	}
	l.ExpireSSOTokens()
	if _, err := portal.GetRoleCredentials(ctx, in); apiCode(err) != "UnauthorizedException" {
		t.Fatalf("after the session ended: %v", err)
	}
}
