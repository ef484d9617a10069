package awsapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/devgate/devgate/internal/exitcode"
)

// A call rejected by AWS names the fix for where its credentials came from:
// the environment's variables, or the profile (named or default), never a
// "<profile>" placeholder. Real SDK clients from Load against a server that
// answers the JSON protocol's error.
func TestRejectedHintNamesTheCredentialsOrigin(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-ErrorType", "UnrecognizedClientException")
		w.WriteHeader(400)
		w.Write([]byte(`{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}`))
	}))
	defer srv.Close()
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "config")
	os.WriteFile(cfgFile, []byte("[default]\nregion = eu-west-1\n[profile dev]\nregion = eu-west-1\n"), 0o600)
	credsFile := filepath.Join(dir, "credentials")
	os.WriteFile(credsFile, []byte("[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s\n[dev]\naws_access_key_id = AKIDDEV\naws_secret_access_key = s\n"), 0o600)

	for _, tc := range []struct {
		name, profile string
		env           map[string]string
		want          string
		notWant       string
	}{
		{"environment", "", map[string]string{"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "s"}, "from the environment", "--profile default"},
		{"named profile", "dev", map[string]string{"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "s"}, "devgate login --profile dev", "environment"},
		{"AWS_PROFILE", "", map[string]string{"AWS_PROFILE": "dev"}, "devgate login --profile dev", "environment"},
		{"default profile", "", nil, "devgate login --profile default", "environment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"} {
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
			t.Setenv("AWS_CONFIG_FILE", cfgFile)
			t.Setenv("AWS_SHARED_CREDENTIALS_FILE", credsFile)
			t.Setenv("AWS_ENDPOINT_URL", srv.URL)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			cfg, err := Load(context.Background(), tc.profile, "")
			if err != nil {
				t.Fatal(err)
			}
			_, err = ssm.NewFromConfig(cfg).DescribeInstanceInformation(context.Background(), &ssm.DescribeInstanceInformationInput{})
			err = Classify(err, "ssm:DescribeInstanceInformation")
			var xe *exitcode.Error
			if !asExit(err, &xe) || xe.Class != exitcode.Credentials {
				t.Fatalf("not a credentials error: %v", err)
			}
			if !strings.Contains(xe.Hint, tc.want) || strings.Contains(xe.Hint, tc.notWant) || strings.Contains(xe.Hint, "<profile>") {
				t.Fatalf("hint %q: want %q, not %q", xe.Hint, tc.want, tc.notWant)
			}
		})
	}
}

func asExit(err error, xe **exitcode.Error) bool { return errors.As(err, xe) }
