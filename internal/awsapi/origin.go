package awsapi

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go/middleware"
)

// Origin says which credentials a call was made with, so that a hint can
// name the right fix: the profile to sign in again, or the environment
// variables to renew.
type Origin struct {
	Profile string // the profile Load used ("default" when none was named)
	// Env: the credentials came from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
	// (the SDK takes them only when no profile is named: config
	// resolveCredentialChain), so no profile is involved.
	Env bool
}

// OriginError wraps the error of an AWS call made with a configuration from
// Load with the Origin of its credentials. It changes nothing else: errors.As
// still finds the SDK's typed errors beneath it.
type OriginError struct {
	Origin Origin
	Err    error
}

func (e *OriginError) Error() string { return e.Err.Error() }
func (e *OriginError) Unwrap() error { return e.Err }

// originOf finds the credentials' origin of cfg as loaded for profile.
func originOf(cfg aws.Config, profile string) Origin {
	o := Origin{Profile: ProfileName(profile)}
	for _, s := range cfg.ConfigSources {
		if ec, ok := s.(awsconfig.EnvConfig); ok && ec.Credentials.HasKeys() && profile == "" && ec.SharedConfigProfile == "" {
			o.Env = true
		}
	}
	return o
}

// withOrigin annotates every call's error with o (the outermost step of the
// SDK's middleware stack, after retries).
func withOrigin(o Origin) func(*middleware.Stack) error {
	return func(s *middleware.Stack) error {
		return s.Initialize.Add(middleware.InitializeMiddlewareFunc("devgateCredentialsOrigin",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleInitialize(ctx, in)
				if err != nil {
					err = &OriginError{Origin: o, Err: err}
				}
				return out, md, err
			}), middleware.Before)
	}
}
