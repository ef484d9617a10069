// Package creds signs a person in the ways teams reach AWS: IAM Identity
// Center (SSO) through the OAuth device authorization flow (`devgate login`),
// and roles behind MFA (a code asked on the controlling terminal, the role's
// credentials cached until they expire). It reads the profile from the
// shared config (~/.aws/config) and writes the caches the AWS CLI shares:
// ~/.aws/sso/cache/<sha1>.json and ~/.aws/cli/cache/<sha1>.json, 0600 in 0700
// directories.
//
// It makes only the sign-in calls (ssooidc, sts:AssumeRole); every other AWS
// call is awsapi's. It prints only to the writer it is given.
package creds

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ssooidc"
	"github.com/aws/smithy-go"

	"github.com/devgate/devgate/internal/exitcode"
)

// Profile is what devgate needs of a shared-config profile.
type Profile struct {
	Name string
	// SSO: the session (sso_session form) or the legacy keys of the profile.
	SSOSession  string // "" for the legacy form
	SSOStartURL string
	SSORegion   string
	// MFA role: role_arn with mfa_serial (and source_profile).
	RoleARN, MFASerial, RoleSessionName, ExternalID string
	DurationSeconds                                 int32
}

// IsSSO reports whether the profile signs in through IAM Identity Center.
func (p Profile) IsSSO() bool { return p.SSOStartURL != "" }

// IsMFA reports whether the profile assumes a role behind MFA.
func (p Profile) IsMFA() bool { return p.RoleARN != "" && p.MFASerial != "" }

// LoadProfile reads profile name ("" = $AWS_PROFILE, else "default") from the
// shared config files.
func LoadProfile(ctx context.Context, name string) (Profile, error) {
	if name == "" {
		name = os.Getenv("AWS_PROFILE")
	}
	named := name != ""
	if name == "" {
		name = "default"
	}
	sc, err := config.LoadSharedConfigProfile(ctx, name, sharedFiles)
	if err != nil {
		var nx config.SharedConfigProfileNotExistError
		switch {
		case !errors.As(err, &nx):
			return Profile{}, exitcode.Wrap(err, exitcode.Credentials, "check ~/.aws/config (AWS_CONFIG_FILE) and ~/.aws/credentials",
				"cannot read profile %s", name)
		// The SDK's text ("failed to get shared config profile, X") adds
		// nothing to these: no cause is appended.
		case named:
			return Profile{}, exitcode.New(exitcode.Credentials, "check --profile / AWS_PROFILE against the profiles in ~/.aws/config (aws configure list-profiles)",
				"there is no profile %s", name)
		case os.Getenv("AWS_ACCESS_KEY_ID") != "":
			return Profile{}, exitcode.New(exitcode.Credentials,
				"devgate login signs in IAM Identity Center profiles and roles with mfa_serial; to use one, name it with --profile",
				"nothing to sign in: the credentials come from the environment (AWS_ACCESS_KEY_ID) and no profile is named")
		default:
			return Profile{}, exitcode.New(exitcode.Credentials,
				"name the profile to sign in with --profile or AWS_PROFILE, or create one with `aws configure sso`",
				"no profile named and no default profile in ~/.aws/config")
		}
	}
	p := Profile{Name: name, RoleARN: sc.RoleARN, MFASerial: sc.MFASerial, RoleSessionName: sc.RoleSessionName, ExternalID: sc.ExternalID}
	if sc.RoleDurationSeconds != nil {
		p.DurationSeconds = int32(sc.RoleDurationSeconds.Seconds())
	}
	if sc.SSOSession != nil {
		p.SSOSession, p.SSOStartURL, p.SSORegion = sc.SSOSession.Name, sc.SSOSession.SSOStartURL, sc.SSOSession.SSORegion
	} else {
		p.SSOStartURL, p.SSORegion = sc.SSOStartURL, sc.SSORegion
	}
	return p, nil
}

// sharedFiles points LoadSharedConfigProfile at the files the SDK's default
// chain reads: AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE when set (the
// SDK reads them only in LoadDefaultConfig's environment step), else
// ~/.aws/config and ~/.aws/credentials.
func sharedFiles(o *config.LoadSharedConfigOptions) {
	if f := os.Getenv("AWS_CONFIG_FILE"); f != "" {
		o.ConfigFiles = []string{f}
	}
	if f := os.Getenv("AWS_SHARED_CREDENTIALS_FILE"); f != "" {
		o.CredentialsFiles = []string{f}
	}
}

// SSOCacheFile is where the SDK and the AWS CLI look for the profile's token:
// ~/.aws/sso/cache/<sha1 of the sso_session name, or of the start URL for a
// legacy profile>.json (aws-sdk-go-v2 credentials/ssocreds
// StandardCachedTokenFilepath; botocore utils.SSOTokenLoader).
func SSOCacheFile(home string, p Profile) string {
	key := p.SSOStartURL
	if p.SSOSession != "" {
		key = p.SSOSession
	}
	sum := sha1.Sum([]byte(key))
	return filepath.Join(home, ".aws", "sso", "cache", hex.EncodeToString(sum[:])+".json")
}

// ssoToken is the cache file's format, as the AWS CLI writes it (the SDK
// reads accessToken and expiresAt, and the refresh fields when present).
type ssoToken struct {
	StartURL              string `json:"startUrl"`
	Region                string `json:"region"`
	AccessToken           string `json:"accessToken"`
	ExpiresAt             string `json:"expiresAt"` // RFC 3339, UTC
	ClientID              string `json:"clientId,omitempty"`
	ClientSecret          string `json:"clientSecret,omitempty"`
	RegistrationExpiresAt string `json:"registrationExpiresAt,omitempty"`
	RefreshToken          string `json:"refreshToken,omitempty"`
}

// DeviceAuth is what the user must see to approve the sign-in.
type DeviceAuth struct {
	VerificationURI         string
	VerificationURIComplete string
	UserCode                string
}

// SSOLogin runs the device authorization flow for p (RFC 8628 over the SSO
// OIDC API): RegisterClient, StartDeviceAuthorization, then CreateToken
// polled at the given interval (slow_down adds 5 s; authorization_pending
// waits) until the user approves or the code expires. show is told the URL
// and code once. cfg reaches the OIDC endpoint (its region is replaced by the
// profile's sso_region; AWS_ENDPOINT_URL and the CA bundle apply). The token
// is written to SSOCacheFile under home; its expiry is returned.
func SSOLogin(ctx context.Context, cfg aws.Config, home string, p Profile, show func(DeviceAuth)) (time.Time, error) {
	if !p.IsSSO() {
		return time.Time{}, exitcode.New(exitcode.Config, "add sso_session (or sso_start_url and sso_region) to the profile in ~/.aws/config",
			"profile %s is not an IAM Identity Center profile", p.Name)
	}
	client := ssooidc.NewFromConfig(cfg, func(o *ssooidc.Options) {
		if p.SSORegion != "" {
			o.Region = p.SSORegion
		}
	})
	reg := &ssooidc.RegisterClientInput{ClientName: aws.String("devgate"), ClientType: aws.String("public")}
	if p.SSOSession != "" {
		reg.Scopes = []string{"sso:account:access"}
	}
	rc, err := client.RegisterClient(ctx, reg)
	if err != nil {
		return time.Time{}, loginError(err, "sso-oidc:RegisterClient")
	}
	da, err := client.StartDeviceAuthorization(ctx, &ssooidc.StartDeviceAuthorizationInput{
		ClientId: rc.ClientId, ClientSecret: rc.ClientSecret, StartUrl: aws.String(p.SSOStartURL)})
	if err != nil {
		return time.Time{}, loginError(err, "sso-oidc:StartDeviceAuthorization")
	}
	show(DeviceAuth{VerificationURI: aws.ToString(da.VerificationUri), VerificationURIComplete: aws.ToString(da.VerificationUriComplete),
		UserCode: aws.ToString(da.UserCode)})
	interval := time.Duration(da.Interval) * time.Second
	if interval <= 0 {
		interval = 5 * time.Second
	}
	deadline := time.Now().Add(time.Duration(da.ExpiresIn) * time.Second)
	for {
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(interval):
		}
		tok, err := client.CreateToken(ctx, &ssooidc.CreateTokenInput{ClientId: rc.ClientId, ClientSecret: rc.ClientSecret,
			DeviceCode: da.DeviceCode, GrantType: aws.String("urn:ietf:params:oauth:grant-type:device_code")})
		if err == nil {
			exp := time.Now().Add(time.Duration(tok.ExpiresIn) * time.Second).UTC()
			t := ssoToken{StartURL: p.SSOStartURL, Region: p.SSORegion, AccessToken: aws.ToString(tok.AccessToken),
				ExpiresAt: exp.Format(time.RFC3339), RefreshToken: aws.ToString(tok.RefreshToken)}
			if p.SSOSession != "" {
				// The sso_session form keeps the registration so that the SDK can refresh the token.
				t.ClientID, t.ClientSecret = aws.ToString(rc.ClientId), aws.ToString(rc.ClientSecret)
				t.RegistrationExpiresAt = time.Unix(rc.ClientSecretExpiresAt, 0).UTC().Format(time.RFC3339)
			}
			b, _ := json.MarshalIndent(t, "", "  ")
			if err := writePrivate(SSOCacheFile(home, p), b); err != nil {
				return time.Time{}, exitcode.Wrap(err, exitcode.LocalIO, "check ~/.aws/sso/cache", "cannot write the SSO token cache")
			}
			return exp, nil
		}
		var ae smithy.APIError
		if !errors.As(err, &ae) {
			return time.Time{}, loginError(err, "sso-oidc:CreateToken")
		}
		switch ae.ErrorCode() {
		case "AuthorizationPendingException":
		case "SlowDownException":
			interval += 5 * time.Second // RFC 8628 §3.5
		case "ExpiredTokenException":
			return time.Time{}, exitcode.Wrap(err, exitcode.Credentials, "run devgate login again and approve the code sooner", "the sign-in code expired before it was approved")
		case "AccessDeniedException":
			return time.Time{}, exitcode.Wrap(err, exitcode.Credentials, "run devgate login again and allow the request", "the sign-in was denied")
		default:
			return time.Time{}, loginError(err, "sso-oidc:CreateToken")
		}
		if time.Now().After(deadline) {
			return time.Time{}, exitcode.New(exitcode.Credentials, "run devgate login again and approve the code sooner", "the sign-in code expired before it was approved")
		}
	}
}

func loginError(err error, action string) error {
	var xe *exitcode.Error
	if errors.As(err, &xe) {
		return err
	}
	return exitcode.Wrap(err, exitcode.Credentials, "check sso_start_url and sso_region in ~/.aws/config, and network access to IAM Identity Center",
		"IAM Identity Center sign-in failed (%s)", action)
}

// writePrivate writes b to path atomically, 0600, creating 0700 directories.
func writePrivate(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".devgate-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// OpenBrowser opens url with the platform's opener (xdg-open, open,
// rundll32) when there is one; it reports whether one was started and never
// fails the sign-in.
func OpenBrowser(url string) bool {
	var name string
	var args []string
	switch runtime.GOOS {
	case "darwin":
		name, args = "open", []string{url}
	case "windows":
		name, args = "rundll32", []string{"url.dll,FileProtocolHandler", url}
	default:
		if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
			return false
		}
		name, args = "xdg-open", []string{url}
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return false
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if cmd.Start() != nil {
		return false
	}
	go cmd.Wait()
	return true
}
