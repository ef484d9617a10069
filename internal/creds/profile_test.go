package creds

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devgate/devgate/internal/exitcode"
)

// LoadProfile says what is wrong when there is no profile to sign in: a named
// profile that does not exist, credentials from the environment (nothing to
// sign in), or no profile at all (no config file).
func TestLoadProfileMissing(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config")
	os.WriteFile(cfg, []byte("[profile dev]\nsso_session = corp\nsso_account_id = 1\nsso_role_name = r\n[sso-session corp]\nsso_start_url = https://x/start\nsso_region = eu-west-1\n"), 0o600)
	for _, tc := range []struct {
		name, profile, file string
		env                 map[string]string
		class               exitcode.Class
		msg                 string
	}{
		{"named missing", "nope", cfg, nil, exitcode.Credentials, "there is no profile nope"},
		{"AWS_PROFILE missing", "", cfg, map[string]string{"AWS_PROFILE": "nope"}, exitcode.Credentials, "there is no profile nope"},
		{"environment credentials", "", cfg, map[string]string{"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s"}, exitcode.Credentials, "credentials come from the environment"},
		{"no config file", "", filepath.Join(dir, "absent"), nil, exitcode.Credentials, "no profile named and no default profile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
			t.Setenv("HOME", dir)
			t.Setenv("AWS_CONFIG_FILE", tc.file)
			t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "absent-credentials"))
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, err := LoadProfile(context.Background(), tc.profile)
			var xe *exitcode.Error
			if !errors.As(err, &xe) || xe.Class != tc.class || !strings.Contains(xe.Msg, tc.msg) {
				t.Fatalf("got %v", err)
			}
		})
	}
	t.Setenv("AWS_CONFIG_FILE", cfg)
	p, err := LoadProfile(context.Background(), "dev")
	if err != nil || !p.IsSSO() || p.SSOStartURL != "https://x/start" {
		t.Fatalf("dev: %+v %v", p, err)
	}
}
