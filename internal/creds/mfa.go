package creds

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"

	"github.com/devgate/devgate/internal/awsapi"
)

// ErrNoTerminal: a code is needed and there is no controlling terminal to ask it on.
var ErrNoTerminal = errors.New("no terminal to ask the MFA code on")

// RoleCacheFile is the AWS CLI's cache file for the profile's AssumeRole
// arguments: ~/.aws/cli/cache/<sha1 of json.dumps(args, sort_keys=True)>.json,
// args being RoleArn, SerialNumber and, when configured, RoleSessionName,
// ExternalId and DurationSeconds (botocore credentials.py
// AssumeRoleCredentialFetcher._create_cache_key).
func RoleCacheFile(home string, p Profile) string {
	args := map[string]any{"RoleArn": p.RoleARN, "SerialNumber": p.MFASerial}
	if p.RoleSessionName != "" {
		args["RoleSessionName"] = p.RoleSessionName
	}
	if p.ExternalID != "" {
		args["ExternalId"] = p.ExternalID
	}
	if p.DurationSeconds > 0 {
		args["DurationSeconds"] = p.DurationSeconds
	}
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		v, _ := json.Marshal(args[k])
		parts[i] = fmt.Sprintf("%q: %s", k, v) // Python's separators: ", " and ": "
	}
	sum := sha1.Sum([]byte("{" + strings.Join(parts, ", ") + "}"))
	return filepath.Join(home, ".aws", "cli", "cache", hex.EncodeToString(sum[:])+".json")
}

// roleCache is the cache file's content (the AssumeRole response, as the AWS CLI keeps it).
type roleCache struct {
	ProviderType string `json:"ProviderType,omitempty"`
	Credentials  struct {
		AccessKeyID     string `json:"AccessKeyId"`
		SecretAccessKey string `json:"SecretAccessKey"`
		SessionToken    string `json:"SessionToken"`
		Expiration      string `json:"Expiration"`
	} `json:"Credentials"`
}

// expiryWindow: cached credentials closer than this to their expiry are not used.
const expiryWindow = 5 * time.Minute

func readRoleCache(path string, now time.Time) (aws.Credentials, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return aws.Credentials{}, false
	}
	var c roleCache
	if json.Unmarshal(b, &c) != nil || c.Credentials.AccessKeyID == "" {
		return aws.Credentials{}, false
	}
	exp, err := time.Parse(time.RFC3339, c.Credentials.Expiration)
	if err != nil || !now.Add(expiryWindow).Before(exp) {
		return aws.Credentials{}, false
	}
	return aws.Credentials{AccessKeyID: c.Credentials.AccessKeyID, SecretAccessKey: c.Credentials.SecretAccessKey,
		SessionToken: c.Credentials.SessionToken, CanExpire: true, Expires: exp, Source: "devgate role cache"}, true
}

// cachedRole serves credentials from the role cache file.
type cachedRole struct{ creds aws.Credentials }

func (c cachedRole) Retrieve(context.Context) (aws.Credentials, error) { return c.creds, nil }

// caching writes what the SDK's AssumeRole provider returned to the cache.
type caching struct {
	inner aws.CredentialsProvider
	path  string
	mu    sync.Mutex
	saved time.Time
}

func (c *caching) Retrieve(ctx context.Context) (aws.Credentials, error) {
	cr, err := c.inner.Retrieve(ctx)
	if err != nil || !cr.CanExpire {
		return cr, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.saved.Equal(cr.Expires) {
		return cr, nil
	}
	var rc roleCache
	rc.ProviderType = "assume-role"
	rc.Credentials.AccessKeyID, rc.Credentials.SecretAccessKey, rc.Credentials.SessionToken = cr.AccessKeyID, cr.SecretAccessKey, cr.SessionToken
	rc.Credentials.Expiration = cr.Expires.UTC().Format(time.RFC3339)
	b, _ := json.MarshalIndent(rc, "", "  ")
	if writePrivate(c.path, b) == nil {
		c.saved = cr.Expires
	}
	return cr, nil
}

func (c *caching) ProviderSources() []aws.CredentialSource {
	if s, ok := c.inner.(aws.CredentialProviderSource); ok {
		return s.ProviderSources()
	}
	return nil
}

// MFAOptions returns what awsapi.Load needs for a profile whose role needs
// MFA (nothing for other profiles): the cached role credentials while they
// last; otherwise the code asked on the controlling terminal (tty, normally
// /dev/tty, which a ProxyCommand started from a terminal still has) and the
// new credentials cached (0600) for the next commands, VSCode's included.
// With no terminal the credentials fail with ErrNoTerminal (exit 10, hint:
// devgate login). now is the clock.
func MFAOptions(ctx context.Context, profile, home, tty string, now time.Time) []awsapi.Option {
	p, err := LoadProfile(ctx, profile)
	if err != nil || !p.IsMFA() {
		return nil
	}
	path := RoleCacheFile(home, p)
	if cr, ok := readRoleCache(path, now); ok {
		return []awsapi.Option{awsapi.WithSDKOptions(config.WithCredentialsProvider(aws.NewCredentialsCache(cachedRole{cr})))}
	}
	return []awsapi.Option{
		awsapi.WithSDKOptions(config.WithAssumeRoleCredentialOptions(func(o *stscreds.AssumeRoleOptions) {
			o.TokenProvider = ttyCode(p, tty)
			if p.DurationSeconds == 0 {
				// The SDK asks for 15 minutes unless told; the AWS CLI sends no
				// DurationSeconds and gets STS's default, one hour. One hour
				// keeps the cache useful (and the AWS CLI, whose expiry window
				// is 15 minutes, can use it too).
				o.Duration = time.Hour
			}
		})),
		awsapi.WithCredentialsWrapper(func(in aws.CredentialsProvider) aws.CredentialsProvider {
			return &caching{inner: in, path: path}
		}),
	}
}

// ttyCode asks for the MFA code on the terminal tty.
func ttyCode(p Profile, tty string) func() (string, error) {
	return func() (string, error) {
		f, err := os.OpenFile(tty, os.O_RDWR, 0)
		if err != nil {
			return "", &awsapi.CredentialsError{Kind: awsapi.CredsMFA, Profile: p.Name, Err: fmt.Errorf("%w (%v)", ErrNoTerminal, err)}
		}
		defer f.Close()
		fmt.Fprintf(f, "devgate: MFA code for %s (profile %s): ", p.MFASerial, p.Name)
		line, err := bufio.NewReader(f).ReadString('\n')
		if err != nil && line == "" {
			return "", &awsapi.CredentialsError{Kind: awsapi.CredsMFA, Profile: p.Name, Err: fmt.Errorf("reading the MFA code: %w", err)}
		}
		return strings.TrimSpace(line), nil
	}
}
