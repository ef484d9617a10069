package creds

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The role cache honours expiry (with a 5-minute margin) and refuses
// malformed files without failing.
func TestReadRoleCache(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	write := func(s string) string {
		p := filepath.Join(dir, "c.json")
		os.WriteFile(p, []byte(s), 0o600)
		return p
	}
	ok := `{"Credentials":{"AccessKeyId":"ASIA1","SecretAccessKey":"s","SessionToken":"t","Expiration":"2026-12-01T01:00:00Z"}}`
	if c, found := readRoleCache(write(ok), now); !found || c.AccessKeyID != "ASIA1" || !c.CanExpire || !c.Expires.Equal(now.Add(time.Hour)) {
		t.Fatalf("valid cache: %+v %v", c, found)
	}
	if _, found := readRoleCache(write(ok), now.Add(56*time.Minute)); found {
		t.Fatal("credentials 4 minutes from expiry were used")
	}
	for _, bad := range []string{"", "{", `{"Credentials":{}}`, `{"Credentials":{"AccessKeyId":"A","Expiration":"tomorrow"}}`} {
		if _, found := readRoleCache(write(bad), now); found {
			t.Fatalf("malformed cache %q accepted", bad)
		}
	}
}

// Keys as botocore computes them: sha1 of json.dumps(args, sort_keys=True).
// The expected values come from Python:
// hashlib.sha1(json.dumps({...}, sort_keys=True).encode()).hexdigest()
func TestRoleCacheFileKey(t *testing.T) {
	p := Profile{RoleARN: "arn:aws:iam::123456789012:role/dev-mfa", MFASerial: "arn:aws:iam::123456789012:mfa/devgate-lab"}
	if got := filepath.Base(RoleCacheFile("/h", p)); got != "c76b2a306512b2198a3c3837454513d07597bd34.json" {
		t.Fatalf("key %s", got)
	}
}

func FuzzReadRoleCache(f *testing.F) {
	f.Add([]byte(`{"Credentials":{"AccessKeyId":"ASIA1","SecretAccessKey":"s","SessionToken":"t","Expiration":"2026-12-01T01:00:00Z"}}`))
	f.Add([]byte(`{"Credentials":{"Expiration":null}}`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "c.json")
		os.WriteFile(p, b, 0o600)
		c, ok := readRoleCache(p, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		if ok && (c.AccessKeyID == "" || !c.CanExpire) {
			t.Fatalf("accepted %q as %+v", b, c)
		}
	})
}
