package awsapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/ssocreds"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/devgate/devgate/internal/exitcode"
)

// This file is devgate's one table of AWS failures: every error an AWS call
// returns goes through Classify, which finds what it is by type (the SDK's
// typed errors, smithy.APIError codes, HTTP status, x509 and network errors)
// and never by the text of err.Error().

// CredentialsKind says why no usable credentials could be had.
type CredentialsKind int

const (
	// CredsUnavailable: the provider failed for another reason (process, HTTP, STS…).
	CredsUnavailable CredentialsKind = iota
	// CredsNotFound: nothing configured (no environment, no profile credentials;
	// the SDK's last resort, the instance role, found nothing).
	CredsNotFound
	// CredsSSOLogin: the IAM Identity Center token is missing, expired or refused.
	CredsSSOLogin
	// CredsMFA: the role needs an MFA code and none could be asked for nor was cached.
	CredsMFA
)

// CredentialsError is a failure to get credentials (before any AWS call
// could be signed), annotated with the profile it concerns.
type CredentialsError struct {
	Kind    CredentialsKind
	Profile string // the profile in use ("default" when none was named)
	Err     error
}

func (e *CredentialsError) Error() string {
	var what string
	switch e.Kind {
	case CredsNotFound:
		what = "no AWS credentials found"
	case CredsSSOLogin:
		what = "the IAM Identity Center (SSO) session of profile " + e.Profile + " has expired or is missing"
	case CredsMFA:
		what = "profile " + e.Profile + " needs an MFA code"
	default:
		what = "cannot get AWS credentials for profile " + e.Profile
	}
	if e.Err == nil {
		return what
	}
	return what + ": " + e.Err.Error()
}

func (e *CredentialsError) Unwrap() error { return e.Err }

// rule is one row of the table: the class, what went wrong, and the fix.
type rule struct {
	class exitcode.Class
	msg   string // %s is the action ("ssm:StartSession")
	hint  string
}

var (
	rejected = rule{exitcode.Credentials, "AWS rejected the credentials (%s)",
		"check them with `aws sts get-caller-identity`; if they are temporary, get new ones (devgate login --profile {profile}, or your usual tool)"}
	expired = rule{exitcode.Credentials, "the credentials have expired (%s)",
		"get new ones: devgate login --profile {profile} (IAM Identity Center or MFA), or your usual tool"}
	skewed = rule{exitcode.Credentials, "AWS refused the request time (%s)",
		"this machine's clock is off by more than 5 minutes: sync it (NTP)"}
	denied = rule{exitcode.Permission, "%s was denied",
		"grant %s to your IAM identity"}
	throttled = rule{exitcode.Throttled, "AWS kept throttling %s", "wait a minute and retry"}
	notFound  = rule{exitcode.NotFound, "instance not found (%s)", "run `devgate ls` to see the instances"}
	badRegion = rule{exitcode.Region, "%s is not available in this region or endpoint",
		"check --region / AWS_REGION"}
)

// apiCodes maps smithy.APIError ErrorCode() values to rules. Sources: the
// "Common Errors" pages of the EC2, SSM, STS and S3 API references, and the
// codes the AWS SDKs treat as expired credentials (aws/retry).
var apiCodes = map[string]rule{
	// credentials AWS does not accept
	"InvalidClientTokenId":                rejected, // STS, query protocol
	"UnrecognizedClientException":         rejected, // JSON services (SSM): unknown access key
	"InvalidSignatureException":           rejected, // JSON services: wrong secret
	"SignatureDoesNotMatch":               rejected, // query protocol, S3
	"IncompleteSignature":                 rejected,
	"IncompleteSignatureException":        rejected,
	"MissingAuthenticationToken":          rejected,
	"MissingAuthenticationTokenException": rejected,
	"AuthFailure":                         rejected, // EC2
	"InvalidAccessKeyId":                  rejected, // S3
	"InvalidToken":                        rejected, // S3: bad session token
	"UnauthorizedException":               rejected, // SSO portal (GetRoleCredentials) with a token it does not accept
	"ExpiredToken":                        expired,
	"ExpiredTokenException":               expired,
	"TokenRefreshRequired":                expired,
	"RequestExpired":                      skewed, // EC2: timestamp outside 5 minutes
	"RequestTimeTooSkewed":                skewed, // S3
	// permissions
	"AccessDenied":          denied,
	"AccessDeniedException": denied,
	"UnauthorizedOperation": denied, // EC2
	"UnauthorizedAccess":    denied,
	"OptInRequired":         {exitcode.Permission, "the account is not subscribed to the service of %s", "enable the service for the account, or use another profile"},
	// throttling (left after the retryer's attempts)
	"Throttling":               throttled,
	"ThrottlingException":      throttled,
	"ThrottledException":       throttled,
	"RequestLimitExceeded":     throttled, // EC2
	"TooManyRequestsException": throttled,
	"SlowDown":                 throttled, // S3
	// targets
	"InvalidInstanceID.NotFound":  notFound,
	"InvalidInstanceID.Malformed": notFound,
	"InvalidInstanceId":           notFound, // SSM
	"InvalidClientVpnEndpointId.NotFound": {exitcode.NotFound, "Client VPN endpoint not found (%s)",
		"check the endpoint id (aws ec2 describe-client-vpn-endpoints) and the region"},
	// sessions (ResumeSession): definitive answers, not retried (SessionGone)
	"DoesNotExistException": {exitcode.TunnelLost, "the service says the session does not exist any more (%s): it ended or timed out while the data channel was down",
		"run the same command again: it opens a new session"},
	"UnknownOperationException": badRegion,
	"InvalidAction":             badRegion,
}

// SessionGone reports whether err is the service's definitive answer that a
// session does not exist (ResumeSession's DoesNotExistException, also its
// answer for an unknown or invalid session id; ValidationException for a
// malformed one): asking again cannot succeed. Classified by smithy error
// code (SSM API reference, ResumeSession "Errors").
func SessionGone(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode() {
	case "DoesNotExistException", "ValidationException":
		return true
	}
	return false
}

// profileHint puts the profile into a hint's {profile}.
// An unknown profile (a call classified without one) reads "<profile>".
func profileHint(h, profile string) string {
	if profile == "" {
		profile = "<profile>"
	}
	return strings.ReplaceAll(h, "{profile}", profile)
}

// envHint is the hint of the rules that name a profile, for credentials that
// came from the environment (no profile involved).
func envHint(r rule) string {
	switch r {
	case rejected:
		return "they come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN): check them with `aws sts get-caller-identity`, or unset them to use a profile"
	case expired:
		return "they come from the environment (AWS_ACCESS_KEY_ID, AWS_SESSION_TOKEN): export new ones from your usual tool, or unset them to use a profile (devgate login --profile NAME)"
	}
	return ""
}

// ruleHint is r's hint for a call made with profile, or (profile "") with the
// origin err carries (OriginError, from Load's configurations).
func ruleHint(r rule, err error, profile string) string {
	if profile == "" {
		var oe *OriginError
		if errors.As(err, &oe) {
			if h := envHint(r); oe.Origin.Env && h != "" {
				return h
			}
			profile = oe.Origin.Profile
		}
	}
	return profileHint(r.hint, profile)
}

// Classify turns the error of the AWS call action ("ssm:StartSession") into
// a classified *exitcode.Error (class, message, hint) wrapping err. Errors
// that are already classified, and context cancellation, pass through.
// Unknown errors are wrapped with the action and keep exit code 1.
func Classify(err error, action string) error {
	return ClassifyFor(err, action, "")
}

// ClassifyFor is Classify for calls made with profile (named in hints).
func ClassifyFor(err error, action, profile string) error {
	if err == nil {
		return nil
	}
	var xe *exitcode.Error
	if errors.As(err, &xe) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w", action, err)
	}
	var ce *CredentialsError
	if errors.As(err, &ce) {
		return classifyCredentials(err, ce)
	}
	if c := credentialsCause(err, profile); c != nil {
		return classifyCredentials(err, c)
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		if r, ok := apiCodes[ae.ErrorCode()]; ok {
			if r == denied {
				return exitcode.Wrap(err, r.class, fmt.Sprintf(r.hint, action), r.msg, action)
			}
			return exitcode.Wrap(err, r.class, ruleHint(r, err, profile), r.msg, action)
		}
	}
	if e, ok := tlsTrust(err); ok {
		return exitcode.Wrap(err, exitcode.Generic,
			"if a proxy or gateway inspects TLS, point AWS_CA_BUNDLE (or ca_bundle in the profile) at its CA certificate (PEM)",
			"the TLS certificate of the AWS endpoint is not trusted (%s): %s", action, e)
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch s := re.HTTPStatusCode(); {
		case s == 403:
			return exitcode.Wrap(err, exitcode.Permission, fmt.Sprintf("grant %s to your IAM identity", action), "%s was denied (HTTP 403)", action)
		case s == 429:
			return exitcode.Wrap(err, throttled.class, throttled.hint, throttled.msg, action)
		case s >= 500:
			return exitcode.Wrap(err, exitcode.Generic, "retry in a minute; if it persists, see the AWS Health Dashboard", "AWS failed to answer %s (HTTP %d)", action, s)
		}
	}
	if isNetwork(err) {
		return exitcode.Wrap(err, exitcode.Generic, "check network access to the AWS endpoints (proxy settings HTTPS_PROXY/NO_PROXY, VPN, AWS_ENDPOINT_URL)",
			"cannot reach AWS for %s", action)
	}
	return fmt.Errorf("%s: %w", action, err)
}

// credentialsCause recognises the SDK's own credential errors that did not go
// through the provider wrapper of Load (a config built elsewhere).
func credentialsCause(err error, profile string) *CredentialsError {
	var ite *ssocreds.InvalidTokenError
	if errors.As(err, &ite) {
		return &CredentialsError{Kind: CredsSSOLogin, Profile: profile, Err: err}
	}
	var mfa config.AssumeRoleTokenProviderNotSetError
	if errors.As(err, &mfa) {
		return &CredentialsError{Kind: CredsMFA, Profile: profile, Err: err}
	}
	return nil
}

func classifyCredentials(err error, ce *CredentialsError) error {
	switch ce.Kind {
	case CredsNotFound:
		return exitcode.Wrap(err, exitcode.Credentials,
			"name a profile (--profile or AWS_PROFILE) from ~/.aws/config, set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run `aws configure`",
			"no AWS credentials found")
	case CredsSSOLogin:
		return exitcode.Wrap(err, exitcode.Credentials, profileHint("run devgate login --profile {profile}", ce.Profile),
			"the IAM Identity Center (SSO) session of profile %s has expired or is missing", ce.Profile)
	case CredsMFA:
		return exitcode.Wrap(err, exitcode.Credentials,
			profileHint("run devgate login --profile {profile} in a terminal (it asks for the MFA code and caches the role's credentials)", ce.Profile),
			"profile %s needs an MFA code and no terminal is available to ask for it", ce.Profile)
	}
	// The provider reached AWS and AWS said no: classify what it said.
	var ae smithy.APIError
	if errors.As(err, &ae) {
		if r, ok := apiCodes[ae.ErrorCode()]; ok && r.class == exitcode.Credentials {
			return exitcode.Wrap(err, exitcode.Credentials, profileHint(r.hint, ce.Profile),
				"cannot get credentials for profile %s: %s", ce.Profile, ae.ErrorCode())
		}
		if r, ok := apiCodes[ae.ErrorCode()]; ok && r.class == exitcode.Permission {
			return exitcode.Wrap(err, exitcode.Credentials,
				"check the MFA code (type a fresh one), the role's trust policy and the source profile's permission to assume it",
				"AWS refused the credentials of profile %s (%s: %s)", ce.Profile, ae.ErrorCode(), ae.ErrorMessage())
		}
	}
	if _, ok := tlsTrust(err); ok {
		return exitcode.Wrap(err, exitcode.Credentials,
			"if a proxy or gateway inspects TLS, point AWS_CA_BUNDLE (or ca_bundle in the profile) at its CA certificate (PEM)",
			"cannot get credentials for profile %s: the TLS certificate is not trusted", ce.Profile)
	}
	if isNetwork(err) {
		return exitcode.Wrap(err, exitcode.Credentials, "check network access to the AWS endpoints (proxy settings HTTPS_PROXY/NO_PROXY, VPN)",
			"cannot get credentials for profile %s: the credentials service is unreachable", orDefault(ce.Profile))
	}
	return exitcode.Wrap(err, exitcode.Credentials, "check the profile in ~/.aws/config (aws sts get-caller-identity --profile "+orDefault(ce.Profile)+")",
		"cannot get AWS credentials for profile %s", orDefault(ce.Profile))
}

func orDefault(p string) string {
	if p == "" {
		return "default"
	}
	return p
}

// tlsTrust finds a certificate-verification failure in err.
func tlsTrust(err error) (string, bool) {
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return "certificate signed by an unknown authority", true
	}
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) {
		return "certificate verification failed", true
	}
	var he x509.HostnameError
	if errors.As(err, &he) {
		return "certificate is not valid for " + he.Host, true
	}
	var ci x509.CertificateInvalidError
	if errors.As(err, &ci) {
		return "certificate invalid", true
	}
	return "", false
}

// TLSTrustError reports whether err is a TLS certificate-verification failure
// (for the data channel, whose dialer is not an SDK client).
func TLSTrustError(err error) bool { _, ok := tlsTrust(err); return ok }

func isNetwork(err error) bool {
	var se *smithyhttp.RequestSendError
	if errors.As(err, &se) {
		return true
	}
	// Not net.Error: syscall.Errno satisfies it, so a missing file would pass for a network failure.
	var oe *net.OpError
	if errors.As(err, &oe) {
		return true
	}
	var de *net.DNSError
	return errors.As(err, &de)
}
