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

// TestEditErrors: every key that can be refused, refused with its kind, a
// message that names the key, the values it takes and the value given, and
// an example edit where one is near; edits that need each other work in
// either order.
func TestEditErrors(t *testing.T) {
	for _, tc := range []struct {
		edits   []string
		kind    Kind
		msg     []string
		example string
		needs   string
	}{
		{[]string{"idleSessionTimeout=90"}, KindInvalid, []string{"idleSessionTimeout:", "from 1 to 60", `not "90"`}, "idleSessionTimeout=60", ""},
		{[]string{"idleSessionTimeout=0"}, KindInvalid, []string{"from 1 to 60", `not "0"`}, "idleSessionTimeout=1", ""},
		{[]string{"idleSessionTimeout=20m"}, KindInvalid, []string{"whole number of minutes", `not "20m"`}, "idleSessionTimeout=20", ""},
		{[]string{"idleSessionTimeout=abc"}, KindInvalid, []string{`not "abc"`}, "idleSessionTimeout=60", ""},
		{[]string{"maxSessionDuration=2000"}, KindInvalid, []string{"maxSessionDuration:", "from 1 to 1440 (or empty: no limit)", `not "2000"`}, "maxSessionDuration=1440", ""},
		{[]string{"maxSessionDuration=-5"}, KindInvalid, []string{`not "-5"`}, "maxSessionDuration=1", ""},
		{[]string{"s3EncryptionEnabled=yes"}, KindInvalid, []string{"s3EncryptionEnabled:", "true or false", `not "yes"`}, "", ""},
		{[]string{"cloudWatchEncryptionEnabled=1"}, KindInvalid, []string{"cloudWatchEncryptionEnabled:", `not "1"`}, "cloudWatchEncryptionEnabled=true", ""},
		{[]string{"cloudWatchStreamingEnabled=off"}, KindInvalid, []string{"cloudWatchStreamingEnabled:", `not "off"`}, "", ""},
		{[]string{"runAsEnabled=TRUE"}, KindInvalid, []string{"runAsEnabled:", `not "TRUE"`}, "runAsEnabled=true", ""},
		{[]string{"runAsEnabled=true"}, KindRequires, []string{"runAsDefaultUser:", "runAsEnabled is true"}, "", "runAsDefaultUser"},
		{[]string{"s3KeyPrefix=logs/"}, KindRequires, []string{"s3KeyPrefix:", `"logs/"`, "s3BucketName is empty"}, "", "s3BucketName"},
		{[]string{"idleTimeout=30"}, KindUnknownKey, []string{`"idleSessionTimeout"`}, "", ""},
		{[]string{"nope=1"}, KindUnknownKey, []string{"valid: cloudWatchEncryptionEnabled"}, "", ""},
		{[]string{"shellProfile=x"}, KindUnknownKey, []string{"shellProfile"}, "", ""},
		{[]string{"idleSessionTimeout"}, KindSyntax, []string{"key=value"}, "", ""},
		// A bad edit after a good one: refused, nothing applied.
		{[]string{"maxSessionDuration=60", "idleSessionTimeout=61"}, KindInvalid, []string{`not "61"`}, "idleSessionTimeout=60", ""},
	} {
		d := Default()
		before := string(d.Marshal())
		err := d.Edit(tc.edits...)
		var pe *Error
		if !errors.As(err, &pe) {
			t.Errorf("Edit(%q) = %v, want *Error", tc.edits, err)
			continue
		}
		for _, m := range tc.msg {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("Edit(%q) = %q, want %q in it", tc.edits, err, m)
			}
		}
		if pe.Kind != tc.kind || pe.Example != tc.example || pe.Needs != tc.needs {
			t.Errorf("Edit(%q): kind %d example %q needs %q, want %d %q %q", tc.edits, pe.Kind, pe.Example, pe.Needs, tc.kind, tc.example, tc.needs)
		}
		if string(d.Marshal()) != before {
			t.Errorf("Edit(%q) changed the document", tc.edits)
		}
		// CheckEdit refuses the same single edits without a document (not
		// the ones that need another key: that takes the document).
		if len(tc.edits) == 1 && tc.kind != KindRequires {
			if err := CheckEdit(tc.edits[0]); !errors.As(err, &pe) || pe.Kind != tc.kind {
				t.Errorf("CheckEdit(%q) = %v, want kind %d", tc.edits[0], err, tc.kind)
			}
		}
	}
	for _, edits := range [][]string{
		{"runAsEnabled=true", "runAsDefaultUser=ubuntu"},
		{"runAsDefaultUser=ubuntu", "runAsEnabled=true"},
		{"s3KeyPrefix=logs/", "s3BucketName=b"},
	} {
		d := Default()
		if err := d.Edit(edits...); err != nil {
			t.Errorf("Edit(%q): %v", edits, err)
		}
	}
	for _, k := range Keys() { // every key takes some value
		v := "x"
		switch keyType[k] {
		case "bool":
			v = "false"
		}
		switch k {
		case "idleSessionTimeout", "maxSessionDuration":
			v = "30"
		case "s3KeyPrefix":
			v = ""
		}
		if err := CheckEdit(k + "=" + v); err != nil {
			t.Errorf("CheckEdit(%s=%s): %v", k, v, err)
		}
	}
}
