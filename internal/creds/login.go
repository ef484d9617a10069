package creds

import (
	"context"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/devgate/devgate/internal/awsapi"
	"github.com/devgate/devgate/internal/exitcode"
)

// LoginOptions configure Login.
type LoginOptions struct {
	Profile string // "" = $AWS_PROFILE, else "default"
	Home    string // the user's home (the caches live under it)
	// AWS are the options of every configuration Login loads (app id, SDK log).
	AWS []awsapi.Option
	// Show is told the verification URL and code of an SSO sign-in.
	Show func(DeviceAuth)
	// TTY is the terminal an MFA code is asked on (normally /dev/tty).
	TTY string
}

// LoginResult says what Login did.
type LoginResult struct {
	Profile   string
	Kind      string    // "sso" or "mfa"
	Expires   time.Time // of the token (sso) or the cached role credentials (mfa)
	CacheFile string
}

// Login signs the profile in: the IAM Identity Center device flow for an SSO
// profile, or an MFA prompt that primes the role-credentials cache for a
// role with mfa_serial. It then gets the profile's credentials once, so that
// a login that succeeds is one the next command can use.
func Login(ctx context.Context, o LoginOptions) (LoginResult, error) {
	p, err := LoadProfile(ctx, o.Profile)
	if err != nil {
		return LoginResult{}, err
	}
	res := LoginResult{Profile: p.Name}
	switch {
	case p.IsSSO():
		// The OIDC calls are unsigned: no credentials are needed to make them.
		opts := append(append([]awsapi.Option(nil), o.AWS...),
			awsapi.WithSDKOptions(config.WithCredentialsProvider(aws.AnonymousCredentials{})))
		cfg, err := awsapi.Load(ctx, p.Name, p.SSORegion, opts...)
		if err != nil {
			return res, err
		}
		exp, err := SSOLogin(ctx, cfg, o.Home, p, o.Show)
		if err != nil {
			return res, err
		}
		res.Kind, res.Expires, res.CacheFile = "sso", exp, SSOCacheFile(o.Home, p)
	case p.IsMFA():
		// Ask now (the cache is bypassed: login means "a fresh session").
		os.Remove(RoleCacheFile(o.Home, p))
		res.Kind, res.CacheFile = "mfa", RoleCacheFile(o.Home, p)
	default:
		return res, exitcode.New(exitcode.Config,
			"devgate login signs in IAM Identity Center profiles (sso_session or sso_start_url) and roles with mfa_serial",
			"profile %s has neither IAM Identity Center settings nor an MFA role", p.Name)
	}
	opts := append(append([]awsapi.Option(nil), o.AWS...), MFAOptions(ctx, p.Name, o.Home, o.TTY, time.Now())...)
	cfg, err := awsapi.Load(ctx, p.Name, "", opts...)
	if err != nil {
		return res, err
	}
	cr, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return res, awsapi.ClassifyFor(err, "get the profile's credentials", p.Name)
	}
	if res.Kind == "mfa" {
		res.Expires = cr.Expires
	}
	return res, nil
}
