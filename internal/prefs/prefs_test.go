package prefs

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labtest"
	"github.com/devgate/devgate/internal/lab/labvpn"
)

// awsSample is the document from the SSM user guide's CLI walk-through.
const awsSample = `{
    "schemaVersion": "1.0",
    "description": "Document to hold regional settings for Session Manager",
    "sessionType": "Standard_Stream",
    "inputs": {
        "s3BucketName": "",
        "s3KeyPrefix": "",
        "s3EncryptionEnabled": true,
        "cloudWatchLogGroupName": "",
        "cloudWatchEncryptionEnabled": true,
        "cloudWatchStreamingEnabled": true,
        "idleSessionTimeout": "20",
        "maxSessionDuration": "",
        "kmsKeyId": "",
        "runAsEnabled": false,
        "runAsDefaultUser": "",
        "shellProfile": {
            "windows": "",
            "linux": ""
        }
    }
}`

func TestParseAWSSample(t *testing.T) {
	d, err := Parse([]byte(awsSample))
	if err != nil {
		t.Fatal(err)
	}
	if *d != *Default() {
		t.Fatalf("sample parses to %+v, want Default()", d)
	}
	d2, err := Parse(d.Marshal())
	if err != nil || string(d2.Marshal()) != string(d.Marshal()) {
		t.Fatalf("canonical form does not round-trip: %v", err)
	}
}

func TestParseRejects(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{`{"sessionManagerRunShell":{"schemaVersion":"1.0"}}`, "no wrapper key"},
		{`{"schemaVersion":"1.0","sessionType":"Standard_Stream","inputs":{"cloudWatchLogGroup":"g"}}`, `"cloudWatchLogGroupName"`},
		{`{"schemaVersion":"1.0","sessionType":"Standard_Stream","inputs":{"idleSessionTimeout":"90"}}`, "from 1 to 60"},
		{`{"schemaVersion":"1.0","sessionType":"Standard_Stream","inputs":{"idleSessionTimeout":20}}`, "JSON string"},
		{`{"schemaVersion":"1.0","sessionType":"Standard_Stream","inputs":{"maxSessionDuration":"1441"}}`, "from 1 to 1440"},
		{`{"schemaVersion":"1.0","sessionType":"Standard_Stream","inputs":{"maxSessionDuration":"0"}}`, "from 1 to 1440"},
		{`{"schemaVersion":"1.0","sessionType":"Standard_Stream","inputs":{"s3EncryptionEnabled":"true"}}`, "JSON boolean"},
		{`{"schemaVersion":"1.0","sessionType":"Standard_Stream","inputs":{"shellProfile":{"bash":"x"}}}`, "shellProfile.bash"},
		{`{"schemaVersion":"1.0","sessionType":"Standard_Stream","inputs":{"runAsEnabled":true}}`, "runAsDefaultUser"},
		{`{"schemaVersion":"2.2","sessionType":"Standard_Stream"}`, `must be "1.0"`},
		{`{"schemaVersion":"1.0","sessionType":"Port"}`, "Standard_Stream"},
		{`{"schemaVersion":"1.0","sessionType":"Standard_Stream","inputs":{"foo":1}}`, "valid: cloudWatchEncryptionEnabled"},
		{`[]`, "not a JSON object"},
	} {
		_, err := Parse([]byte(tc.doc))
		var pe *Error
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%s) = %v, want *Error with %q", tc.doc, err, tc.want)
		}
	}
}

func TestSet(t *testing.T) {
	d := Default()
	for _, a := range []string{"idleSessionTimeout=60", "maxSessionDuration=1440", "shellProfile.linux=exec bash -l", "runAsDefaultUser=ubuntu", "runAsEnabled=true", "cloudWatchLogGroupName=/ssm/sessions"} {
		if err := d.Set(a); err != nil {
			t.Fatalf("Set(%q): %v", a, err)
		}
	}
	if d.Inputs.IdleSessionTimeout != "60" || d.Inputs.ShellProfile.Linux != "exec bash -l" || !d.Inputs.RunAsEnabled {
		t.Fatalf("%+v", d.Inputs)
	}
	for _, tc := range []struct{ a, want string }{
		{"idleSessionTimeout=61", "idleSessionTimeout: must be a whole number of minutes from 1 to 60, not \"61\""},
		{"idleSessionTimeout=0", "from 1 to 60"},
		{"idleSessionTimeout=20m", "from 1 to 60"},
		{"maxSessionDuration=2000", "from 1 to 1440"},
		{"cloudWatchLogGroup=x", `the Session Manager key is "cloudWatchLogGroupName"`},
		{"nope=1", "valid: cloudWatchEncryptionEnabled"},
		{"s3EncryptionEnabled=yes", "true or false"},
		{"idleSessionTimeout", "key=value"},
	} {
		d := Default()
		before := string(d.Marshal())
		err := d.Set(tc.a)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Set(%q) = %v, want %q", tc.a, err, tc.want)
		}
		if string(d.Marshal()) != before {
			t.Errorf("Set(%q) changed the document", tc.a)
		}
	}
}

func TestDiff(t *testing.T) {
	a := Default()
	b := Default()
	if Diff(a, b) != "" {
		t.Fatal("diff of equal documents")
	}
	b.Set("idleSessionTimeout=45")
	d := Diff(a, b)
	if !strings.Contains(d, `-    "idleSessionTimeout": "20",`) || !strings.Contains(d, `+    "idleSessionTimeout": "45",`) {
		t.Fatalf("diff:\n%s", d)
	}
	if d := Diff(nil, b); !strings.Contains(d, "/dev/null") {
		t.Fatalf("creation diff:\n%s", d)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(awsSample))
	f.Add([]byte(`{"schemaVersion":"1.0","sessionType":"Standard_Stream","inputs":{"shellProfile":{"linux":"x"}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Parse(b)
		if err != nil {
			return
		}
		d2, err := Parse(d.Marshal())
		if err != nil {
			t.Fatalf("canonical form does not parse: %v", err)
		}
		if string(d2.Marshal()) != string(d.Marshal()) {
			t.Fatal("canonical form is not stable")
		}
	})
}

func TestStoreAgainstLab(t *testing.T) {
	svc := labvpn.New()
	l := labtest.Start(t, lab.Options{Instances: []lab.InstanceSpec{}, Services: []lab.Service{svc}})
	ctx := context.Background()
	st := Store{API: ssm.NewFromConfig(l.AWSConfig())}
	cur, err := st.Get(ctx)
	if err != nil || cur.Exists {
		t.Fatalf("Get before first save: %+v %v", cur, err)
	}
	d := Default()
	d.Set("idleSessionTimeout=30")
	r, err := st.Put(ctx, cur, d)
	if err != nil || !r.Created || r.Version != "1" {
		t.Fatalf("first Put: %+v %v", r, err)
	}
	cur, err = st.Get(ctx)
	if err != nil || !cur.Exists || cur.Doc == nil || cur.Doc.Inputs.IdleSessionTimeout != "30" {
		t.Fatalf("Get: %+v %v", cur, err)
	}
	d.Set("maxSessionDuration=480")
	r, err = st.Put(ctx, cur, d)
	if err != nil || r.Created || r.Version != "2" {
		t.Fatalf("second Put: %+v %v", r, err)
	}
	if _, def, latest, _ := svc.Document(DocumentName); def != 2 || latest != 2 {
		t.Fatalf("default %d latest %d: the new version was not promoted", def, latest)
	}
	// The same content again is a no-op success, not an error.
	r, err = st.Put(ctx, cur, d)
	if err != nil || r.Version != "2" {
		t.Fatalf("idempotent Put: %+v %v", r, err)
	}
	svc.Deny("ssm:UpdateDocument")
	d.Set("maxSessionDuration=600")
	_, err = st.Put(ctx, cur, d)
	if exitcode.Code(err) != int(exitcode.Permission) || !strings.Contains(exitcode.HintOf(err), "ssm:UpdateDocument") {
		t.Fatalf("denied Put: %v (code %d)", err, exitcode.Code(err))
	}
}
