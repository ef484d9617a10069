// Package vscode merges devgate's Remote-SSH settings into VS Code's
// settings.json (Code, Code - Insiders, VSCodium, Cursor, Windsurf) with a JSONC editor that keeps the
// user's comments, formatting and every other setting.
//
// It writes only real Remote-SSH settings: remote.SSH.connectTimeout (raised,
// never lowered, to cover a cold start through devgate) and
// remote.SSH.remotePlatform entries ("linux") for devgate's aliases. It does
// not install or talk to VS Code, and it never removes a setting.
package vscode

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tailscale/hujson"

	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/sshconfig"
)

// Setting names (Remote-SSH, ms-vscode-remote.remote-ssh).
const (
	ConnectTimeoutKey = "remote.SSH.connectTimeout"
	RemotePlatformKey = "remote.SSH.remotePlatform"
)

// DefaultConnectTimeout is the connectTimeout devgate asks for, in seconds:
// Remote-SSH passes it to ssh as ConnectTimeout, which also covers the
// ProxyCommand's start (instance start, agent online, key push, session).
// The extension's default is 15 s.
const DefaultConnectTimeout = 120

// Product is a VS Code flavour.
type Product struct {
	Name string // one of Products
	Path string // its user settings.json
}

// Products are the editors that read Remote-SSH's settings from a VS Code
// style user directory: their data folder names under the application-data
// directory (VS Code's product.json "nameLong"/dataFolderName as the forks
// ship them).
var Products = []string{"Code", "Code - Insiders", "VSCodium", "Cursor", "Windsurf"}

// SettingsPaths returns the user settings.json of each of Products for goos,
// the way VS Code finds its user-data directory (getDefaultUserDataPath in
// src/vs/platform/environment/node/userDataPath.ts): $VSCODE_APPDATA when set,
// else %APPDATA% (Windows), ~/Library/Application Support (macOS),
// $XDG_CONFIG_HOME or ~/.config (others); then <product>/User/settings.json.
func SettingsPaths(goos, home string, getenv func(string) string) []Product {
	base := getenv("VSCODE_APPDATA")
	if base == "" {
		switch goos {
		case "windows":
			base = getenv("APPDATA")
			if base == "" {
				base = filepath.Join(home, "AppData", "Roaming")
			}
		case "darwin":
			base = filepath.Join(home, "Library", "Application Support")
		default:
			base = getenv("XDG_CONFIG_HOME")
			if base == "" || !filepath.IsAbs(base) {
				base = filepath.Join(home, ".config")
			}
		}
	}
	var out []Product
	for _, name := range Products {
		out = append(out, Product{Name: name, Path: filepath.Join(base, name, "User", "settings.json")})
	}
	return out
}

// Installed returns the products whose configuration directory exists (the
// parent of "User"). When none exists it returns Code, so that settings are
// in place when it is installed.
func Installed(products []Product) []Product {
	var out []Product
	for _, p := range products {
		if fi, err := os.Stat(filepath.Dir(filepath.Dir(p.Path))); err == nil && fi.IsDir() {
			out = append(out, p)
		}
	}
	if len(out) == 0 && len(products) > 0 {
		out = products[:1]
	}
	return out
}

// Merge returns settings (JSONC) with connectTimeout at least timeout and a
// remotePlatform "linux" entry for each alias that has none. Comments,
// formatting and all other members are kept byte for byte; merging twice is a
// no-op.
func Merge(settings []byte, timeout int, aliases []string) ([]byte, error) {
	bom := []byte("\xef\xbb\xbf")
	if bytes.HasPrefix(settings, bom) { // kept as it was
		out, err := Merge(settings[len(bom):], timeout, aliases)
		if err != nil {
			return nil, err
		}
		return append(bom, out...), nil
	}
	if len(bytes.TrimSpace(settings)) == 0 {
		settings = []byte("{}\n")
	}
	v, err := hujson.Parse(settings)
	if err != nil {
		return nil, exitcode.Wrap(err, exitcode.Config, "fix the syntax error in settings.json (VS Code shows it), then run again", "settings.json does not parse")
	}
	root, ok := v.Value.(*hujson.Object)
	if !ok {
		return nil, exitcode.New(exitcode.Config, "settings.json must be a JSON object", "settings.json is not an object")
	}
	indent := memberIndent(root, "    ")

	if m := find(root, ConnectTimeoutKey); m != nil {
		cur, err := strconv.ParseFloat(string(bytes.TrimSpace(literal(m.Value))), 64)
		if err != nil || cur < float64(timeout) {
			m.Value.Value = hujson.Literal(strconv.Itoa(timeout))
		}
	} else {
		appendMember(root, ConnectTimeoutKey, hujson.Value{Value: hujson.Literal(strconv.Itoa(timeout))}, indent)
	}

	if len(aliases) > 0 {
		m := find(root, RemotePlatformKey)
		if m == nil {
			obj := &hujson.Object{}
			for _, a := range aliases {
				appendMember(obj, a, hujson.Value{Value: hujson.Literal(`"linux"`)}, indent+indent)
			}
			obj.AfterExtra = hujson.Extra("\n" + indent)
			appendMember(root, RemotePlatformKey, hujson.Value{Value: obj}, indent)
		} else {
			obj, ok := m.Value.Value.(*hujson.Object)
			if !ok {
				return nil, exitcode.New(exitcode.Config, fmt.Sprintf("make %q an object like {\"host\": \"linux\"}", RemotePlatformKey), "%s in settings.json is not an object", RemotePlatformKey)
			}
			inner := memberIndent(obj, indent+indent)
			closing := len(obj.Members) == 0
			for _, a := range aliases {
				if find(obj, a) == nil {
					appendMember(obj, a, hujson.Value{Value: hujson.Literal(`"linux"`)}, inner)
				}
			}
			if closing && len(obj.Members) > 0 && !bytes.Contains(obj.AfterExtra, []byte("\n")) {
				obj.AfterExtra = hujson.Extra("\n" + indent)
			}
		}
	}
	out := v.Pack()
	// Belt and braces: what we write must parse as JSONC.
	if _, err := hujson.Parse(out); err != nil {
		return nil, fmt.Errorf("vscode: merged settings do not parse (bug): %w", err)
	}
	return out, nil
}

func literal(v hujson.Value) []byte {
	if l, ok := v.Value.(hujson.Literal); ok {
		return l
	}
	return nil
}

func find(obj *hujson.Object, name string) *hujson.ObjectMember {
	for i := range obj.Members {
		if l, ok := obj.Members[i].Name.Value.(hujson.Literal); ok && l.String() == name {
			return &obj.Members[i]
		}
	}
	return nil
}

// memberIndent returns the indentation of obj's last member (the whitespace
// after the last newline before its name), or def.
func memberIndent(obj *hujson.Object, def string) string {
	if len(obj.Members) == 0 {
		return def
	}
	b := string(obj.Members[len(obj.Members)-1].Name.BeforeExtra)
	i := strings.LastIndex(b, "\n")
	if i < 0 {
		return def
	}
	ind := b[i+1:]
	if strings.Trim(ind, " \t") != "" {
		return def
	}
	return ind
}

func appendMember(obj *hujson.Object, name string, val hujson.Value, indent string) {
	nb, _ := json.Marshal(name)
	wasEmpty := len(obj.Members) == 0
	m := hujson.ObjectMember{
		Name:  hujson.Value{BeforeExtra: hujson.Extra("\n" + indent), Value: hujson.Literal(nb)},
		Value: val,
	}
	m.Value.BeforeExtra = hujson.Extra(" ")
	if !wasEmpty {
		// Keep a trailing comma where the user had one.
		last := &obj.Members[len(obj.Members)-1]
		m.Value.AfterExtra, last.Value.AfterExtra = last.Value.AfterExtra, nil
		// Comments after the old last member (before the closing brace)
		// stay on its line: they move in front of the new member.
		// (Not when a block comment is involved: the newline may be inside it.)
		if i := bytes.LastIndexByte(obj.AfterExtra, '\n'); i > 0 && !bytes.Contains(obj.AfterExtra, []byte("/*")) {
			head := append([]byte(nil), obj.AfterExtra[:i]...)
			m.Name.BeforeExtra = hujson.Extra(string(head) + "\n" + indent)
			obj.AfterExtra = append(hujson.Extra(nil), obj.AfterExtra[i:]...)
		}
	}
	obj.Members = append(obj.Members, m)
	if wasEmpty && !bytes.Contains(obj.AfterExtra, []byte("\n")) {
		outer := strings.TrimSuffix(indent, "    ")
		if outer == indent {
			outer = strings.TrimSuffix(indent, "\t")
		}
		obj.AfterExtra = hujson.Extra("\n" + outer)
	}
}

// Plan returns the settings.json changes for the given products.
func Plan(products []Product, timeout int, aliases []string) ([]sshconfig.Change, error) {
	var out []sshconfig.Change
	for _, p := range products {
		c, err := sshconfig.ReadChange(p.Path, nil, 0o600, 0o700)
		if err != nil {
			return nil, err
		}
		nb, err := Merge(c.Old, timeout, aliases)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Path, err)
		}
		c.New = nb
		out = append(out, c)
	}
	return out, nil
}

// Check reports whether settings contain connectTimeout >= timeout and a
// remotePlatform entry for each alias; missing lists what is not.
func Check(settings []byte, timeout int, aliases []string) (missing []string, err error) {
	std, err := hujson.Standardize(bytes.TrimPrefix(append([]byte(nil), settings...), []byte("\xef\xbb\xbf")))
	if err != nil {
		return nil, exitcode.Wrap(err, exitcode.Config, "fix the syntax error in settings.json", "settings.json does not parse")
	}
	var s map[string]json.RawMessage // exact-case keys, unlike a struct
	if err := json.Unmarshal(std, &s); err != nil {
		return nil, exitcode.Wrap(err, exitcode.Config, "fix settings.json", "settings.json is not an object")
	}
	var timeoutVal float64
	if json.Unmarshal(s[ConnectTimeoutKey], &timeoutVal) != nil || timeoutVal < float64(timeout) {
		missing = append(missing, fmt.Sprintf("%s >= %d", ConnectTimeoutKey, timeout))
	}
	var platform map[string]json.RawMessage
	_ = json.Unmarshal(s[RemotePlatformKey], &platform)
	for _, a := range aliases {
		if _, ok := platform[a]; !ok {
			missing = append(missing, fmt.Sprintf("%s[%q]", RemotePlatformKey, a))
		}
	}
	return missing, nil
}
