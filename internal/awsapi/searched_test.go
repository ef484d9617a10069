package awsapi

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
)

// TestSearched: a not-found message names the region and a named profile
// the SDK loaded the config from (with several accounts, the first question).
func TestSearched(t *testing.T) {
	cases := []struct {
		cfg  aws.Config
		want string
	}{
		{aws.Config{Region: "eu-west-1", ConfigSources: []any{awsconfig.EnvConfig{}, awsconfig.SharedConfig{Profile: "B"}}}, "region eu-west-1, profile B"},
		{aws.Config{Region: "us-east-1", ConfigSources: []any{awsconfig.SharedConfig{Profile: "default"}}}, "region us-east-1"},
		{aws.Config{Region: "us-east-1"}, "region us-east-1"},
		{aws.Config{}, "the default region"},
	}
	for _, c := range cases {
		if got := searched(c.cfg); got != c.want {
			t.Errorf("searched(%+v) = %q, want %q", c.cfg.ConfigSources, got, c.want)
		}
	}
}
