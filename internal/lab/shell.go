package lab

import (
	"context"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/devgate/devgate/internal/lab/labapi"
	"github.com/devgate/devgate/internal/lab/labkms"
	"github.com/devgate/devgate/internal/lab/mgs"
	"github.com/devgate/devgate/internal/ssmmsg"
)

// PreferencesDocument is the regional Session Manager preferences document
// (a Standard_Stream session document; ssm-session-protocol.md §1.3).
const PreferencesDocument = "SSM-SessionManagerRunShell"

// DocumentSource is a service that stores SSM documents (labvpn.Service);
// the lab finds it among Options.Services.
type DocumentSource interface {
	Document(name string) (content string, deflt, latest int, ok bool)
}

// builtinShellDocs are the AWS-owned shell-type session documents the lab
// knows without a document store: AWS-StartInteractiveCommand and
// AWS-StartNonInteractiveCommand take one parameter, command
// (ssm-session-protocol.md §1.3).
var builtinShellDocs = map[string]string{
	"AWS-StartInteractiveCommand": `{"schemaVersion":"1.0","sessionType":"InteractiveCommands",
		"parameters":{"command":{"type":"String"}},"properties":{"linux":{"commands":"{{ command }}","runAsElevated":false}}}`,
	"AWS-StartNonInteractiveCommand": `{"schemaVersion":"1.0","sessionType":"NonInteractiveCommands",
		"parameters":{"command":{"type":"String"}},"properties":{"linux":{"commands":"{{ command }}","runAsElevated":false}}}`,
}

// sessionDoc is the part of a session document the agent reads.
type sessionDoc struct {
	SessionType string                     `json:"sessionType"`
	Inputs      preferences                `json:"inputs"`
	Parameters  map[string]json.RawMessage `json:"parameters"`
	Properties  map[string]any             `json:"properties"`
}

// preferences are the Standard_Stream inputs the lab's agent honours.
type preferences struct {
	KMSKeyID           string `json:"kmsKeyId"`
	RunAsEnabled       bool   `json:"runAsEnabled"`
	RunAsDefaultUser   string `json:"runAsDefaultUser"`
	IdleSessionTimeout string `json:"idleSessionTimeout"`
	MaxSessionDuration string `json:"maxSessionDuration"`
	ShellProfile       struct {
		Linux string `json:"linux"`
	} `json:"shellProfile"`
}

// documentSource returns the document store among the lab's services.
func (l *Lab) documentSource() DocumentSource {
	for _, s := range l.opts.Services {
		if ds, ok := s.(DocumentSource); ok {
			return ds
		}
	}
	return nil
}

// lookupSessionDoc returns a shell-type session document by name; ok is
// false for names that are not shell documents (port documents, unknown).
func (l *Lab) lookupSessionDoc(name string) (sessionDoc, bool) {
	var d sessionDoc
	content, ok := builtinShellDocs[name]
	if !ok {
		if ds := l.documentSource(); ds != nil {
			content, _, _, ok = ds.Document(name)
		}
	}
	if !ok && name == PreferencesDocument {
		// No preferences stored yet: the service's defaults (idle 20 min).
		content, ok = `{"schemaVersion":"1.0","sessionType":"Standard_Stream","inputs":{"idleSessionTimeout":"20"}}`, true
	}
	if !ok || json.Unmarshal([]byte(content), &d) != nil {
		return d, false
	}
	switch d.SessionType {
	case ssmmsg.SessionTypeStandardStream, ssmmsg.SessionTypeInteractiveCommands, ssmmsg.SessionTypeNonInteractiveCommands:
		return d, true
	}
	return d, false
}

var placeholderRe = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_]+)\s*\}\}`)

// substitute replaces {{ name }} in every string of v with params.
func substitute(v any, params map[string]string) any {
	switch x := v.(type) {
	case string:
		return placeholderRe.ReplaceAllStringFunc(x, func(m string) string {
			return params[placeholderRe.FindStringSubmatch(m)[1]]
		})
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = substitute(e, params)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = substitute(e, params)
		}
		return out
	}
	return v
}

// minutes parses a preferences duration ("20", in minutes) into lab time.
func (l *Lab) minutes(s string, lo, hi int) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < lo || n > hi {
		return 0
	}
	unit := l.opts.SessionMinute
	if unit <= 0 {
		unit = time.Minute
	}
	return time.Duration(n) * unit
}

// shellSpec builds the agent's view of a shell-type session: the document's
// substituted properties, and the regional preferences (kmsKeyId, runAs,
// idleSessionTimeout, maxSessionDuration, shellProfile) from
// SSM-SessionManagerRunShell as the lab's document store holds it.
func (l *Lab) shellSpec(inst *instance, name string, d sessionDoc, in map[string][]string) (*mgs.ShellSpec, error) {
	params := map[string]string{}
	for k, vs := range in {
		if _, ok := d.Parameters[k]; !ok {
			return nil, labapi.Errorf(400, "InvalidParameters", "Parameter %q is not defined in document %s", k, name)
		}
		params[k] = strings.Join(vs, "\n")
	}
	for k := range d.Parameters {
		if _, ok := params[k]; !ok {
			return nil, labapi.Errorf(400, "InvalidParameters", "Parameter %q is required by document %s", k, name)
		}
	}
	props, _ := substitute(d.Properties, params).(map[string]any)
	spec := &mgs.ShellSpec{RunAs: inst.spec.User, HandshakeProperties: props}
	if linux, ok := props["linux"].(map[string]any); ok {
		spec.Commands, _ = linux["commands"].(string)
		switch v := linux["separateOutputStream"].(type) {
		case bool:
			spec.SeparateOutput = v
		case string:
			spec.SeparateOutput = v == "true"
		}
	}
	prefs := d.Inputs
	if name != PreferencesDocument {
		if p, ok := l.lookupSessionDoc(PreferencesDocument); ok {
			prefs = p.Inputs
		}
	}
	if prefs.RunAsEnabled && prefs.RunAsDefaultUser != "" {
		spec.RunAs = prefs.RunAsDefaultUser
	}
	spec.KMSKeyID = prefs.KMSKeyID
	spec.IdleTimeout = l.minutes(prefs.IdleSessionTimeout, 1, 60)
	spec.MaxDuration = l.minutes(prefs.MaxSessionDuration, 1, 1440)
	if d.SessionType == ssmmsg.SessionTypeStandardStream {
		spec.ShellProfile = prefs.ShellProfile.Linux
	}
	spec.Decrypt = func(blob []byte, ec map[string]string) ([]byte, error) {
		plain, _, err := l.kms.Decrypt(blob, "", ec, labkms.PrincipalInstance)
		return plain, err
	}
	return spec, nil
}

// startShellSession is StartSession for a shell-type document.
func (l *Lab) startShellSession(ctx context.Context, in startSessionInput, doc string, d sessionDoc) (any, error) {
	inst, err := l.connectableTarget(in.Target)
	if err != nil {
		return nil, err
	}
	spec, err := l.shellSpec(inst, doc, d, in.Parameters)
	if err != nil {
		return nil, err
	}
	id := l.newSessionID()
	tok, err := l.mgs.Create(mgs.SessionSpec{SessionID: id, Target: inst.spec.ID, Document: doc, SessionType: d.SessionType,
		AgentVersion: inst.spec.AgentVersion, Dial: l.dialer(inst), Shell: spec})
	if err != nil {
		return nil, labapi.Errorf(500, "InternalServerError", "%v", err)
	}
	l.sessions.Store(id, inst.spec.ID)
	return map[string]string{"SessionId": id, "TokenValue": tok, "StreamUrl": l.streamURL(l.host(ctx), id)}, nil
}
