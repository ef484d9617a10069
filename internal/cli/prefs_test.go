package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/prefs"
)

func TestPrefsCommands(t *testing.T) {
	svc := startVPNLab(t)

	code, stdout, stderr := runCLI(t, "", "prefs", "show")
	if code != 0 || !strings.Contains(stderr, "no preferences saved in us-east-1") || !strings.Contains(stdout, `"idleSessionTimeout": "20"`) {
		t.Fatalf("show before any save: %d\n%s\n%s", code, stdout, stderr)
	}
	// Out of range and unknown keys: refused with the range, nothing stored.
	for _, tc := range []struct{ arg, want string }{
		{"idleSessionTimeout=90", "from 1 to 60"},
		{"maxSessionDuration=1441", "from 1 to 1440"},
		{"cloudWatchLogGroup=/x", `"cloudWatchLogGroupName"`},
		{"bogus=1", "valid keys"},
	} {
		code, _, stderr := runCLI(t, "", "prefs", "set", tc.arg, "--yes")
		if code != int(exitcode.Usage) || !strings.Contains(stderr, tc.want) {
			t.Errorf("set %s: %d %s", tc.arg, code, stderr)
		}
	}
	if len(svc.Documents()) != 0 {
		t.Fatal("a refused set stored a document")
	}
	// A "no" at the prompt writes nothing.
	code, stdout, stderr = runCLI(t, "n\n", "prefs", "set", "idleSessionTimeout=30")
	if code != int(exitcode.Declined) || !strings.Contains(stdout, "+++ b/SSM-SessionManagerRunShell") || len(svc.Documents()) != 0 {
		t.Fatalf("declined set: %d\n%s\n%s", code, stdout, stderr)
	}
	// First save creates the document.
	code, stdout, stderr = runCLI(t, "y\n", "prefs", "set", "idleSessionTimeout=30", "shellProfile.linux=exec bash -l")
	if code != 0 || !strings.Contains(stderr, "created SSM-SessionManagerRunShell") || !strings.Contains(stdout, `+    "idleSessionTimeout": "30",`) {
		t.Fatalf("first set: %d\n%s\n%s", code, stdout, stderr)
	}
	// Second: an update, promoted to default; the diff shows only the change.
	code, stdout, stderr = runCLI(t, "", "prefs", "set", "maxSessionDuration=480", "--yes")
	if code != 0 || !strings.Contains(stdout, `-    "maxSessionDuration": "",`) || !strings.Contains(stdout, `+    "maxSessionDuration": "480",`) || strings.Contains(stdout, `+    "idleSessionTimeout"`) {
		t.Fatalf("second set: %d\n%s\n%s", code, stdout, stderr)
	}
	content, def, latest, _ := svc.Document(prefs.DocumentName)
	if def != 2 || latest != 2 || !strings.Contains(content, `"maxSessionDuration": "480"`) || !strings.Contains(content, `"linux": "exec bash -l"`) {
		t.Fatalf("stored: default %d latest %d\n%s", def, latest, content)
	}
	// Same again: nothing to do.
	code, _, stderr = runCLI(t, "", "prefs", "set", "maxSessionDuration=480", "--yes")
	if code != 0 || !strings.Contains(stderr, "nothing changed") {
		t.Fatalf("no-op set: %d %s", code, stderr)
	}
	code, stdout, _ = runCLI(t, "", "prefs", "show")
	if code != 0 || !strings.Contains(stdout, `"maxSessionDuration": "480"`) {
		t.Fatalf("show: %s", stdout)
	}

	// apply: a whole document from a file, strictly checked.
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"sessionManagerRunShell":{"schemaVersion":"1.0"}}`), 0o600)
	if code, _, stderr := runCLI(t, "", "prefs", "apply", bad, "--yes"); code != int(exitcode.Usage) || !strings.Contains(stderr, "no wrapper key") {
		t.Fatalf("apply wrapper: %d %s", code, stderr)
	}
	good := filepath.Join(dir, "good.json")
	d := prefs.Default()
	d.Set("idleSessionTimeout=15")
	os.WriteFile(good, d.Marshal(), 0o600)
	code, stdout, stderr = runCLI(t, "", "prefs", "apply", good, "--dry-run")
	if code != 0 || !strings.Contains(stdout, `+    "idleSessionTimeout": "15",`) || !strings.Contains(stderr, "nothing written") {
		t.Fatalf("apply --dry-run: %d\n%s\n%s", code, stdout, stderr)
	}
	if code, _, stderr := runCLI(t, "", "prefs", "apply", good, "--yes"); code != 0 || !strings.Contains(stderr, "version 3") {
		t.Fatalf("apply: %d %s", code, stderr)
	}
	// Missing permission: exit code and the IAM actions in the hint.
	svc.Deny("ssm:UpdateDocument")
	code, _, stderr = runCLI(t, "", "prefs", "set", "idleSessionTimeout=10", "--yes")
	if code != int(exitcode.Permission) || !strings.Contains(stderr, "ssm:UpdateDocumentDefaultVersion") {
		t.Fatalf("denied: %d %s", code, stderr)
	}
}

// TestPrefsSetRefusals: `prefs set` with a bad edit says what is wrong with
// that key (its range and the value given, or the key it needs) and a hint
// for that case — the list of valid keys only for an unknown key — before
// any AWS call (the endpoint here answers nothing), and edits that need each
// other go in either order.
func TestPrefsSetRefusals(t *testing.T) {
	svc := startVPNLab(t)
	lab := os.Getenv("AWS_ENDPOINT_URL")
	for _, tc := range []struct {
		arg        string
		msg, hint  []string
		offline    bool // refused before any AWS call
		keysInHint bool
	}{
		{"idleSessionTimeout=90", []string{"idleSessionTimeout:", "from 1 to 60", `not "90"`}, []string{"e.g. devgate prefs set idleSessionTimeout=60"}, true, false},
		{"idleSessionTimeout=20m", []string{"from 1 to 60", `not "20m"`}, []string{"idleSessionTimeout=20"}, true, false},
		{"maxSessionDuration=1441", []string{"maxSessionDuration:", "from 1 to 1440", `not "1441"`}, []string{"maxSessionDuration=1440"}, true, false},
		{"s3EncryptionEnabled=yes", []string{"s3EncryptionEnabled:", "true or false", `not "yes"`}, []string{"--help"}, true, false},
		{"cloudWatchEncryptionEnabled=0", []string{"cloudWatchEncryptionEnabled:", `not "0"`}, []string{"cloudWatchEncryptionEnabled=false"}, true, false},
		{"cloudWatchStreamingEnabled=on", []string{"cloudWatchStreamingEnabled:", `not "on"`}, nil, true, false},
		{"runAsEnabled=1", []string{"runAsEnabled:", `not "1"`}, []string{"runAsEnabled=true"}, true, false},
		{"runAsEnabled=true", []string{"runAsDefaultUser:", "runAsEnabled is true"}, []string{"set runAsDefaultUser in the same command"}, false, false},
		{"s3KeyPrefix=logs/", []string{"s3KeyPrefix:", `"logs/"`, "s3BucketName is empty"}, []string{"set s3BucketName in the same command"}, false, false},
		{"cloudWatchLogGroup=/x", []string{`"cloudWatchLogGroupName"`}, nil, true, true},
		{"bogus=1", []string{"bogus: unknown key"}, nil, true, true},
		{"idleSessionTimeout", []string{"key=value"}, []string{"KEY=VALUE"}, true, false},
	} {
		for _, endpoint := range []string{lab, "http://127.0.0.1:1"} {
			if endpoint != lab && !tc.offline {
				continue
			}
			t.Setenv("AWS_ENDPOINT_URL", endpoint)
			code, _, stderr := runCLI(t, "", "prefs", "set", tc.arg, "--yes")
			hint := ""
			if _, h, ok := strings.Cut(stderr, "devgate: hint: "); ok {
				hint = h
			}
			bad := code != int(exitcode.Usage) || strings.Contains(hint, "valid keys") != tc.keysInHint
			for _, m := range tc.msg {
				bad = bad || !strings.Contains(stderr, m)
			}
			for _, m := range tc.hint {
				bad = bad || !strings.Contains(hint, m)
			}
			if bad {
				t.Errorf("set %s (endpoint %q): exit %d\n%s", tc.arg, endpoint, code, stderr)
			}
		}
	}
	t.Setenv("AWS_ENDPOINT_URL", lab)
	if len(svc.Documents()) != 0 {
		t.Fatal("a refused set stored a document")
	}
	code, _, stderr := runCLI(t, "", "prefs", "set", "runAsEnabled=true", "runAsDefaultUser=ubuntu", "--yes")
	if code != 0 {
		t.Fatalf("runAsEnabled=true runAsDefaultUser=ubuntu: %d %s", code, stderr)
	}
}
