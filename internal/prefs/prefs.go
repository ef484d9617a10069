// Package prefs models Session Manager preferences: the
// SSM-SessionManagerRunShell document (schemaVersion 1.0, sessionType
// Standard_Stream, inputs), with strict parsing, validation whose messages
// give the valid range, key=value edits, a canonical rendering for diffs,
// and Store, which reads and writes the document through the SSM API
// (create when missing, update, promote the new version to default).
//
// It rejects the keys that circulating snippets get wrong (a
// "sessionManagerRunShell" wrapper, "cloudWatchLogGroup") and names the
// right one. It does not decide what the user sees, and it does not manage
// other session documents (Port, InteractiveCommands) or YAML documents.
package prefs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/rogpeppe/go-internal/diff"
)

// DocumentName is the regional preferences document.
const DocumentName = "SSM-SessionManagerRunShell"

// Ranges of the timeouts, in minutes (session-preferences-timeout.md,
// session-preferences-max-timeout.md).
const (
	IdleMin, IdleMax           = 1, 60
	MaxDurationMin, MaxDurMax  = 1, 1440
	DefaultIdleSessionTimeout  = "20"
	SchemaVersion, SessionType = "1.0", "Standard_Stream"
)

// Document is the preferences document. Field order is the canonical order.
type Document struct {
	SchemaVersion string `json:"schemaVersion"`
	Description   string `json:"description,omitempty"`
	SessionType   string `json:"sessionType"`
	Inputs        Inputs `json:"inputs"`
}

// Inputs are the preferences proper.
type Inputs struct {
	S3BucketName                string       `json:"s3BucketName"`
	S3KeyPrefix                 string       `json:"s3KeyPrefix"`
	S3EncryptionEnabled         bool         `json:"s3EncryptionEnabled"`
	CloudWatchLogGroupName      string       `json:"cloudWatchLogGroupName"`
	CloudWatchEncryptionEnabled bool         `json:"cloudWatchEncryptionEnabled"`
	CloudWatchStreamingEnabled  bool         `json:"cloudWatchStreamingEnabled"`
	IdleSessionTimeout          string       `json:"idleSessionTimeout"`
	MaxSessionDuration          string       `json:"maxSessionDuration"`
	KMSKeyID                    string       `json:"kmsKeyId"`
	RunAsEnabled                bool         `json:"runAsEnabled"`
	RunAsDefaultUser            string       `json:"runAsDefaultUser"`
	ShellProfile                ShellProfile `json:"shellProfile"`
}

// ShellProfile holds commands run at the start of shell sessions.
type ShellProfile struct {
	Windows string `json:"windows"`
	Linux   string `json:"linux"`
}

// Default is the document AWS's CLI guide creates
// (getting-started-create-preferences-cli.md).
func Default() *Document {
	return &Document{
		SchemaVersion: SchemaVersion,
		Description:   "Document to hold regional settings for Session Manager",
		SessionType:   SessionType,
		Inputs: Inputs{
			S3EncryptionEnabled: true, CloudWatchEncryptionEnabled: true, CloudWatchStreamingEnabled: true,
			IdleSessionTimeout: DefaultIdleSessionTimeout,
		},
	}
}

// keyType is the JSON type of each input.
var keyType = map[string]string{
	"s3BucketName": "string", "s3KeyPrefix": "string", "s3EncryptionEnabled": "bool",
	"cloudWatchLogGroupName": "string", "cloudWatchEncryptionEnabled": "bool", "cloudWatchStreamingEnabled": "bool",
	"idleSessionTimeout": "string", "maxSessionDuration": "string", "kmsKeyId": "string",
	"runAsEnabled": "bool", "runAsDefaultUser": "string", "shellProfile": "object",
}

// wrongKeys are names seen in circulating advice, and the real key.
var wrongKeys = map[string]string{
	"cloudWatchLogGroup":      "cloudWatchLogGroupName",
	"cloudwatchLogGroupName":  "cloudWatchLogGroupName",
	"s3Bucket":                "s3BucketName",
	"idleTimeout":             "idleSessionTimeout",
	"sessionTimeout":          "idleSessionTimeout",
	"maxSessionTimeout":       "maxSessionDuration",
	"kmsKeyID":                "kmsKeyId",
	"runAsUser":               "runAsDefaultUser",
	"s3EncryptionEnable":      "s3EncryptionEnabled",
	"cloudWatchStreaming":     "cloudWatchStreamingEnabled",
	"shellProfile.bash":       "shellProfile.linux",
	"sessionManagerRunShell":  "",
	"cloudWatchLogStreamName": "cloudWatchLogGroupName",
}

// Keys lists the keys Set accepts, sorted.
func Keys() []string {
	var ks []string
	for k := range keyType {
		if k != "shellProfile" {
			ks = append(ks, k)
		}
	}
	ks = append(ks, "shellProfile.linux", "shellProfile.windows", "description")
	sort.Strings(ks)
	return ks
}

// Kind says what is wrong with a preference.
type Kind int

const (
	// KindInvalid is a value of the wrong type or out of range (Msg says
	// which values the key takes and the value given).
	KindInvalid Kind = iota
	// KindUnknownKey is a key Session Manager does not have (Msg names the
	// right one when it is a known misspelling, else lists the valid keys).
	KindUnknownKey
	// KindSyntax is an edit that is not key=value.
	KindSyntax
	// KindRequires is a value that needs another key set too (Needs).
	KindRequires
)

// Error is a validation or parse error of a preferences document.
type Error struct {
	Key  string // the offending key ("" for the document as a whole)
	Msg  string
	Kind Kind
	// Needs is the key that must be set too (KindRequires).
	Needs string
	// Example is a valid edit of Key close to the one given ("idleSessionTimeout=60"
	// for 90; "" when there is none to offer).
	Example string
}

func (e *Error) Error() string {
	if e.Key == "" {
		return e.Msg
	}
	return e.Key + ": " + e.Msg
}

func unknownKey(where, k string) error {
	if right, ok := wrongKeys[k]; ok {
		if right == "" {
			return &Error{Key: k, Kind: KindUnknownKey, Msg: "there is no wrapper key; put schemaVersion, sessionType and inputs at the top level of the document"}
		}
		return &Error{Key: k, Kind: KindUnknownKey, Msg: fmt.Sprintf("unknown key; the Session Manager key is %q", right)}
	}
	return &Error{Key: k, Kind: KindUnknownKey, Msg: fmt.Sprintf("unknown key in %s (valid: %s)", where, strings.Join(Keys(), ", "))}
}

// invalid is a value error of key k.
func invalid(k, format string, a ...any) *Error {
	return &Error{Key: k, Kind: KindInvalid, Msg: fmt.Sprintf(format, a...)}
}

// short quotes a raw JSON value for a message, cut at 40 bytes.
func short(v []byte) string {
	if len(v) > 40 {
		return string(v[:40]) + "…"
	}
	return string(v)
}

// Parse parses and validates a preferences document strictly: unknown keys,
// wrong types and out-of-range values are errors (*Error).
func Parse(b []byte) (*Document, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, &Error{Msg: fmt.Sprintf("not a JSON object: %v", err)}
	}
	d := &Document{}
	for k, v := range top {
		var err error
		switch k {
		case "schemaVersion":
			err = str(v, &d.SchemaVersion)
		case "description":
			err = str(v, &d.Description)
		case "sessionType":
			err = str(v, &d.SessionType)
		case "inputs":
			err = parseInputs(v, &d.Inputs)
		default:
			return nil, unknownKey("the document", k)
		}
		if err != nil {
			var pe *Error
			if errors.As(err, &pe) {
				return nil, err
			}
			return nil, &Error{Key: k, Msg: err.Error()}
		}
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return d, nil
}

func str(v json.RawMessage, dst *string) error {
	if err := json.Unmarshal(v, dst); err != nil {
		return fmt.Errorf("must be a string, not %s", v)
	}
	return nil
}

func parseInputs(raw json.RawMessage, in *Inputs) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return invalid("inputs", "must be an object, not %s", short(raw))
	}
	for k, v := range m {
		t, ok := keyType[k]
		if !ok {
			return unknownKey("inputs", k)
		}
		var err error
		switch t {
		case "bool":
			var b bool
			if json.Unmarshal(v, &b) != nil {
				err = invalid(k, "must be true or false (a JSON boolean), not %s", short(v))
			}
			setBool(in, k, b)
		case "string":
			var s string
			if json.Unmarshal(v, &s) != nil {
				err = invalid(k, "must be a JSON string, not %s (timeouts are strings of minutes, e.g. \"20\")", short(v))
			}
			setString(in, k, s)
		case "object":
			var sp map[string]json.RawMessage
			if json.Unmarshal(v, &sp) != nil {
				err = invalid(k, `must be an object {"windows": "...", "linux": "..."}, not %s`, short(v))
				break
			}
			for pk, pv := range sp {
				var s string
				if json.Unmarshal(pv, &s) != nil {
					return invalid("shellProfile."+pk, "must be a string, not %s", short(pv))
				}
				switch pk {
				case "linux":
					in.ShellProfile.Linux = s
				case "windows":
					in.ShellProfile.Windows = s
				default:
					return &Error{Key: "shellProfile." + pk, Kind: KindUnknownKey, Msg: "unknown key (valid: shellProfile.linux, shellProfile.windows)"}
				}
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func setBool(in *Inputs, k string, b bool) {
	switch k {
	case "s3EncryptionEnabled":
		in.S3EncryptionEnabled = b
	case "cloudWatchEncryptionEnabled":
		in.CloudWatchEncryptionEnabled = b
	case "cloudWatchStreamingEnabled":
		in.CloudWatchStreamingEnabled = b
	case "runAsEnabled":
		in.RunAsEnabled = b
	}
}

func setString(in *Inputs, k, s string) {
	switch k {
	case "s3BucketName":
		in.S3BucketName = s
	case "s3KeyPrefix":
		in.S3KeyPrefix = s
	case "cloudWatchLogGroupName":
		in.CloudWatchLogGroupName = s
	case "idleSessionTimeout":
		in.IdleSessionTimeout = s
	case "maxSessionDuration":
		in.MaxSessionDuration = s
	case "kmsKeyId":
		in.KMSKeyID = s
	case "runAsDefaultUser":
		in.RunAsDefaultUser = s
	}
}

// Validate checks the document's values, each on its own and then together
// (runAsEnabled needs runAsDefaultUser, s3KeyPrefix needs s3BucketName).
// The error is an *Error.
func (d *Document) Validate() error {
	if err := d.validateValues(); err != nil {
		return err
	}
	if d.Inputs.RunAsEnabled && d.Inputs.RunAsDefaultUser == "" {
		return &Error{Key: "runAsDefaultUser", Kind: KindRequires, Needs: "runAsDefaultUser",
			Msg: "must be set when runAsEnabled is true (the OS user that sessions start as)"}
	}
	if d.Inputs.S3KeyPrefix != "" && d.Inputs.S3BucketName == "" {
		return &Error{Key: "s3KeyPrefix", Kind: KindRequires, Needs: "s3BucketName",
			Msg: fmt.Sprintf("is set (%q) but s3BucketName is empty", d.Inputs.S3KeyPrefix)}
	}
	return nil
}

// validateValues checks each value on its own.
func (d *Document) validateValues() error {
	if d.SchemaVersion != SchemaVersion {
		return invalid("schemaVersion", "must be %q (the only schema of session documents), not %q", SchemaVersion, d.SchemaVersion)
	}
	if d.SessionType != SessionType {
		return invalid("sessionType", "must be %q for the preferences document, not %q", SessionType, d.SessionType)
	}
	if err := minutes("idleSessionTimeout", d.Inputs.IdleSessionTimeout, IdleMin, IdleMax, ""); err != nil {
		return err
	}
	return minutes("maxSessionDuration", d.Inputs.MaxSessionDuration, MaxDurationMin, MaxDurMax, " (or empty: no limit)")
}

// minutes checks a timeout: empty, or a whole number of minutes from lo to
// hi written plainly ("20", not "020" or "20m"). The error says the range
// (and what empty means, orEmpty) and the value given, with an example
// edit clamped into the range.
func minutes(key, v string, lo, hi int, orEmpty string) error {
	if v == "" {
		return nil
	}
	n, err := strconv.Atoi(v)
	if err == nil && n >= lo && n <= hi && strconv.Itoa(n) == v {
		return nil
	}
	e := invalid(key, "must be a whole number of minutes from %d to %d%s, not %q", lo, hi, orEmpty, v)
	if err != nil { // "20m", "1h": the number it starts with
		digits := strings.TrimLeft(v, " ")
		if i := strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
			digits = digits[:i]
		}
		if n, err = strconv.Atoi(digits); err != nil {
			n = hi
		}
	}
	e.Example = key + "=" + strconv.Itoa(min(hi, max(lo, n)))
	return e
}

// Set applies one "key=value" edit (keys as Keys lists; booleans true/false;
// an empty value clears a string) and validates the result. On error d is
// unchanged. Edit applies several at once.
func (d *Document) Set(assignment string) error { return d.Edit(assignment) }

// Edit applies "key=value" edits in order, then validates the result once,
// so that edits that need each other (runAsEnabled=true
// runAsDefaultUser=ubuntu) may come in either order. Each edit's own key and
// value are checked first, as CheckEdit does. On error d is unchanged; the
// error is an *Error.
func (d *Document) Edit(assignments ...string) error {
	c := *d
	for _, a := range assignments {
		if err := CheckEdit(a); err != nil {
			return err
		}
		if err := c.set(a); err != nil {
			return err
		}
	}
	if err := c.Validate(); err != nil {
		return err
	}
	*d = c
	return nil
}

// CheckEdit checks one "key=value" edit on its own, without a document:
// the key exists, and the value is of its type and in its range. What it
// cannot check needs the document (a key that needs another set too). The
// error is an *Error.
func CheckEdit(assignment string) error {
	c := Default()
	if err := c.set(assignment); err != nil {
		return err
	}
	return c.validateValues() // Default's other values are valid: only this edit can fail
}

func (d *Document) set(assignment string) error {
	k, v, ok := strings.Cut(assignment, "=")
	if !ok {
		return &Error{Key: assignment, Kind: KindSyntax, Msg: "want key=value"}
	}
	k = strings.TrimSpace(k)
	switch k {
	case "description":
		d.Description = v
		return nil
	case "shellProfile.linux":
		d.Inputs.ShellProfile.Linux = v
		return nil
	case "shellProfile.windows":
		d.Inputs.ShellProfile.Windows = v
		return nil
	}
	t, known := keyType[k]
	if !known || t == "object" {
		return unknownKey("preferences", k)
	}
	switch t {
	case "bool":
		b, err := strconv.ParseBool(v)
		if err != nil || (v != "true" && v != "false") {
			e := invalid(k, "must be true or false, not %q", v)
			if err == nil { // 1, t, TRUE…: what was meant is clear
				e.Example = k + "=" + strconv.FormatBool(b)
			}
			return e
		}
		setBool(&d.Inputs, k, b)
	case "string":
		setString(&d.Inputs, k, v)
	}
	return nil
}

// Marshal renders d canonically: keys in the documented order, two-space
// indent, trailing newline. Equal documents render identically.
func (d *Document) Marshal() []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	enc.Encode(d)
	return b.Bytes()
}

// Diff is a unified diff from old to new ("" when equal). A nil old is a
// document that does not exist yet.
func Diff(old, new *Document) string {
	var ob []byte
	oldName := "a/" + DocumentName
	if old == nil {
		oldName = "/dev/null"
	} else {
		ob = old.Marshal()
	}
	nb := new.Marshal()
	if old != nil && bytes.Equal(ob, nb) {
		return ""
	}
	return string(diff.Diff(oldName, ob, "b/"+DocumentName, nb))
}
