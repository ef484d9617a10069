package awsapi

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/ssocreds"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/devgate/devgate/internal/exitcode"
)

func apiErr(code string) error {
	return &smithy.OperationError{ServiceID: "SSM", OperationName: "StartSession",
		Err: &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: 400}},
			Err:      &smithy.GenericAPIError{Code: code, Message: "m"}}}}
}

func signing(err error) error {
	return &smithy.OperationError{ServiceID: "EC2", OperationName: "DescribeInstances",
		Err: &v4.SigningError{Err: fmt.Errorf("failed to retrieve credentials: %w", err)}}
}

func TestClassifyTable(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		class exitcode.Class
		msg   string // in the message
		hint  string // in the hint
	}{
		{"unknown key (SSM)", apiErr("UnrecognizedClientException"), exitcode.Credentials, "rejected", "get-caller-identity"},
		{"bad secret (SSM)", apiErr("InvalidSignatureException"), exitcode.Credentials, "rejected", "devgate login --profile dev"},
		{"bad key (STS)", apiErr("InvalidClientTokenId"), exitcode.Credentials, "rejected", ""},
		{"EC2 auth", apiErr("AuthFailure"), exitcode.Credentials, "rejected", ""},
		{"expired", apiErr("ExpiredTokenException"), exitcode.Credentials, "expired", "devgate login --profile dev"},
		{"clock", apiErr("RequestExpired"), exitcode.Credentials, "request time", "clock"},
		{"denied", apiErr("AccessDeniedException"), exitcode.Permission, "ssm:StartSession was denied", "grant ssm:StartSession"},
		{"ec2 denied", apiErr("UnauthorizedOperation"), exitcode.Permission, "denied", ""},
		{"throttled", apiErr("ThrottlingException"), exitcode.Throttled, "throttling", ""},
		{"no instance", apiErr("InvalidInstanceID.NotFound"), exitcode.NotFound, "instance not found", "devgate ls"},
		{"no credentials", signing(&CredentialsError{Kind: CredsNotFound, Profile: "dev", Err: errors.New("imds")}),
			exitcode.Credentials, "no AWS credentials found", "AWS_PROFILE"},
		{"sso expired", signing(&CredentialsError{Kind: CredsSSOLogin, Profile: "dev", Err: &ssocreds.InvalidTokenError{}}),
			exitcode.Credentials, "SSO) session of profile dev has expired", "run devgate login --profile dev"},
		{"sso typed, no wrapper", signing(&ssocreds.InvalidTokenError{}), exitcode.Credentials, "has expired", "devgate login --profile dev"},
		{"mfa", config.AssumeRoleTokenProviderNotSetError{}, exitcode.Credentials, "MFA", "devgate login --profile dev in a terminal"},
		{"provider refused", signing(&CredentialsError{Kind: CredsUnavailable, Profile: "dev", Err: apiErr("AccessDenied")}),
			exitcode.Credentials, "AWS refused the credentials of profile dev (AccessDenied", "MFA code"},
		{"x509", &smithyhttp.RequestSendError{Err: fmt.Errorf("tls: %w", x509.UnknownAuthorityError{})}, exitcode.Generic,
			"not trusted", "AWS_CA_BUNDLE"},
		{"network", &smithyhttp.RequestSendError{Err: &net.OpError{Op: "dial", Err: errors.New("refused")}}, exitcode.Generic,
			"cannot reach AWS", "HTTPS_PROXY"},
		{"http 503", &smithy.OperationError{Err: &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: 503}}, Err: errors.New("x")}}}, exitcode.Generic, "HTTP 503", "retry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ClassifyFor(tc.err, "ssm:StartSession", "dev")
			var xe *exitcode.Error
			if !errors.As(err, &xe) {
				t.Fatalf("not classified: %v", err)
			}
			if xe.Class != tc.class || !strings.Contains(xe.Msg, tc.msg) || !strings.Contains(xe.Hint, tc.hint) {
				t.Fatalf("got class %d msg %q hint %q", xe.Class, xe.Msg, xe.Hint)
			}
			if !errors.Is(err, tc.err) {
				t.Fatal("the cause is not wrapped")
			}
		})
	}
	// Classified errors and unknown ones pass through; the text of an error never classifies it.
	pre := exitcode.New(exitcode.NotFound, "h", "m")
	if ClassifyFor(pre, "a", "") != error(pre) {
		t.Fatal("an already classified error was reclassified")
	}
	text := errors.New("AccessDenied UnrecognizedClientException failed to retrieve credentials dial tcp")
	if err := Classify(text, "x:Y"); exitcode.Code(err) != 1 {
		t.Fatalf("classified by its text: %v", err)
	}
}
