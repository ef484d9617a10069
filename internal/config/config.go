// Package config is devgate's one source of defaults: the AWS profile and
// region, the OS user, the alias prefix, the S3 bucket and the network path
// (auto|direct|ssm) that every command uses, per host (an ssh alias written
// by `devgate setup`), per alias prefix and globally.
//
// The file is JSON (comments and trailing commas accepted, via hujson) at
// $DEVGATE_CONFIG, else os.UserConfigDir()/devgate/config.json. `devgate
// setup` writes it; people may edit it. Resolve applies one precedence for
// every command (see Resolve).
//
// It does not call AWS, write ssh configs or print anything; a missing file
// is an empty config, a malformed one a *ParseError.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode"

	"github.com/tailscale/hujson"

	"github.com/devgate/devgate/internal/atomicfile"
)

// Built-in defaults, used when no flag, environment variable or config entry says.
const (
	DefaultUser   = "ec2-user"
	DefaultPrefix = "devbox"
	DefaultPath   = "auto"
)

// Paths accepted in Settings.Path.
var Paths = []string{"auto", "direct", "ssm"}

// Env names devgate reads (besides the AWS SDK's own).
const (
	EnvConfig = "DEVGATE_CONFIG" // path of the config file
	EnvUser   = "DEVGATE_USER"
	EnvPrefix = "DEVGATE_PREFIX"
	EnvBucket = "DEVGATE_BUCKET"
	EnvPath   = "DEVGATE_PATH"
)

// Settings are the values a command resolves. An empty field says nothing.
type Settings struct {
	Profile string `json:"profile,omitempty"` // AWS shared-config profile
	Region  string `json:"region,omitempty"`  // AWS region, e.g. "eu-west-1"
	User    string `json:"user,omitempty"`    // OS user on the instance (ssh User, EC2 Instance Connect InstanceOSUser)
	Bucket  string `json:"bucket,omitempty"`  // S3 bucket of `cp --via s3`
	Path    string `json:"path,omitempty"`    // "auto", "direct" or "ssm"
}

// Host is what devgate knows about one ssh alias (written by setup).
type Host struct {
	Settings
	Prefix string `json:"prefix"`         // the alias prefix of the setup run that wrote it
	Name   string `json:"name,omitempty"` // the instance's Name tag: resolved to a running instance at connect time
	ID     string `json:"id,omitempty"`   // the instance id last seen with that name (informative)
}

// OwnsAccount reports whether the host names its account and region (a
// profile or a region; setup writes the region it listed the host in, and
// the profile, empty when the SDK's own chain found the credentials): then
// the host is one setup set's (prefix, profile, region) and its profile and
// region are never filled from the prefix's entry or the defaults.
func (h Host) OwnsAccount() bool { return h.Profile != "" || h.Region != "" }

// File is the config file's content.
type File struct {
	// Prefix is the default alias prefix ("devbox" when empty).
	Prefix string `json:"prefix,omitempty"`
	// Defaults apply to every target.
	Defaults Settings `json:"defaults,omitzero"`
	// Prefixes apply to targets "<prefix>-…" (the longest matching prefix wins).
	Prefixes map[string]Settings `json:"prefixes,omitempty"`
	// Hosts apply to one alias (or to its instance id).
	Hosts map[string]Host `json:"hosts,omitempty"`
}

// ParseError is a malformed config file.
type ParseError struct {
	Path string
	Err  error
}

func (e *ParseError) Error() string { return fmt.Sprintf("config %s: %v", e.Path, e.Err) }
func (e *ParseError) Unwrap() error { return e.Err }

// DefaultFile returns the config file's path: $DEVGATE_CONFIG, else
// os.UserConfigDir()/devgate/config.json ("" when neither is known).
func DefaultFile(getenv func(string) string) string {
	if p := getenv(EnvConfig); p != "" {
		return p
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "devgate", "config.json")
}

// Load reads the file at path; a missing file (or path "") is an empty File.
func Load(path string) (*File, error) {
	if path == "" {
		return &File{}, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &File{}, nil
	}
	if err != nil {
		return nil, &ParseError{Path: path, Err: err}
	}
	f, err := Parse(b)
	if err != nil {
		return nil, &ParseError{Path: path, Err: err}
	}
	return f, nil
}

// Parse decodes a config (JSON with comments). Unknown keys and invalid
// values are errors that name the key.
func Parse(b []byte) (*File, error) {
	std, err := hujson.Standardize(b)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(std))
	dec.DisallowUnknownFields()
	f := &File{}
	if err := dec.Decode(f); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON object")
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return f, nil
}

// Validate checks values: path one of Paths, prefixes and aliases without
// spaces or ssh pattern characters, users without spaces.
func (f *File) Validate() error {
	check := func(where string, s Settings) error {
		if s.Path != "" && !validPath(s.Path) {
			return fmt.Errorf("%s: path %q: want one of %s", where, s.Path, strings.Join(Paths, ", "))
		}
		for _, v := range []struct{ k, v string }{{"user", s.User}, {"profile", s.Profile}, {"region", s.Region}, {"bucket", s.Bucket}} {
			if strings.ContainsAny(v.v, " \t\n\"'") {
				return fmt.Errorf("%s: %s %q must not contain spaces or quotes", where, v.k, v.v)
			}
		}
		return nil
	}
	if err := checkName("prefix", f.Prefix); err != nil {
		return err
	}
	if err := check("defaults", f.Defaults); err != nil {
		return err
	}
	for p, s := range f.Prefixes {
		if err := checkName("prefixes key", p); err != nil {
			return err
		}
		if err := check("prefixes."+p, s); err != nil {
			return err
		}
	}
	for a, h := range f.Hosts {
		if err := checkName("hosts key", a); err != nil {
			return err
		}
		if a == "" {
			return errors.New("hosts: empty alias")
		}
		if err := check("hosts."+a, h.Settings); err != nil {
			return err
		}
	}
	return nil
}

func checkName(where, s string) error {
	if strings.ContainsAny(s, " \t\n*?!,\"'") {
		return fmt.Errorf("%s %q must not contain spaces, quotes or ssh pattern characters", where, s)
	}
	return nil
}

func validPath(p string) bool {
	for _, v := range Paths {
		if p == v {
			return true
		}
	}
	return false
}

// Marshal renders the file as indented JSON (map keys sorted), ending in a newline.
func (f *File) Marshal() []byte {
	b, _ := json.MarshalIndent(f, "", "  ")
	return append(b, '\n')
}

// Save writes the file atomically (0600, directory 0700).
func (f *File) Save(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(path, f.Marshal(), 0o600)
}

// Aliases returns the host aliases, sorted.
func (f *File) Aliases() []string {
	out := make([]string, 0, len(f.Hosts))
	for a := range f.Hosts {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// Source says where a resolved value came from (for doctor and messages).
type Source string

const (
	FromFlag    Source = "flag"
	FromEnv     Source = "environment"
	FromHost    Source = "config (host)"
	FromPrefix  Source = "config (prefix)"
	FromConfig  Source = "config (defaults)"
	FromDefault Source = "built-in default"
	FromNone    Source = "" // nothing said (profile, region and bucket: the SDK's own chain decides)
)

// Resolved are the settings for one target, and where each came from.
type Resolved struct {
	Settings
	Prefix string
	// Alias is the host entry that applied ("" when none).
	Alias string
	Host  *Host
	From  map[string]Source // "profile", "region", "user", "bucket", "path", "prefix"
}

// Resolve returns the settings for target (an alias, "<prefix>-<name>", a
// Name tag or an instance id; "" for no target) with one precedence for
// every command:
//
//   - user: flag > host > environment (DEVGATE_USER) > prefix > defaults >
//     built-in default (the host's User is what ssh logs in as);
//   - bucket, path, prefix: flag > environment (DEVGATE_BUCKET,
//     DEVGATE_PATH, DEVGATE_PREFIX) > host > prefix > defaults > built-in default;
//   - profile, region: flag > host > environment (AWS_PROFILE, AWS_REGION,
//     AWS_DEFAULT_REGION) > prefix > defaults > nothing (the SDK's chain); a
//     region from the config is taken only with its own profile (or when it
//     names none), never paired with another account's profile.
//     A host lives in one account and region: the ProxyCommand setup writes
//     passes them as flags, so `devgate cp <alias>:…` must use them over the
//     shell's AWS_PROFILE too, or it would not reach the host ssh reaches.
//     A host that names its account (Host.OwnsAccount) takes no profile or
//     region from its prefix or the defaults: a set without a profile (the
//     SDK's chain) stays without one when another set shares its prefix.
//
// flags holds the values given on the command line ("" = not given); prefix
// the --prefix flag. getenv reads the environment (os.Getenv).
func (f *File) Resolve(target string, flags Settings, prefix string, getenv func(string) string) Resolved {
	if f == nil {
		f = &File{}
	}
	r := Resolved{From: map[string]Source{}}
	// The prefix first: it selects the prefix entry.
	r.Prefix, r.From["prefix"] = pick(
		val{prefix, FromFlag}, val{getenv(EnvPrefix), FromEnv}, val{f.Prefix, FromConfig}, val{DefaultPrefix, FromDefault})
	host, alias := f.lookupHost(target)
	var hs Settings
	if host != nil {
		hs = host.Settings
		r.Host, r.Alias = host, alias
	}
	ps := f.prefixSettings(target, r.Prefix, host)
	d := f.Defaults
	// A host that names its account (a profile or a region: setup writes
	// both, the profile empty for the SDK's own chain) belongs to that one
	// set: the prefix's and the defaults' account may be another set's.
	pa, da := ps, d
	if host != nil && host.OwnsAccount() {
		pa, da = Settings{}, Settings{}
	}
	// A host's user is what ssh logs in as through the managed config (its
	// User line): it comes before DEVGATE_USER, as the host's account does
	// before AWS_PROFILE, so that cp reaches the host as the user ssh does.
	r.User, r.From["user"] = pick(val{flags.User, FromFlag}, val{hs.User, FromHost}, val{getenv(EnvUser), FromEnv},
		val{ps.User, FromPrefix}, val{d.User, FromConfig}, val{DefaultUser, FromDefault})
	r.Bucket, r.From["bucket"] = pick(val{flags.Bucket, FromFlag}, val{getenv(EnvBucket), FromEnv},
		val{hs.Bucket, FromHost}, val{ps.Bucket, FromPrefix}, val{d.Bucket, FromConfig})
	r.Path, r.From["path"] = pick(val{flags.Path, FromFlag}, val{getenv(EnvPath), FromEnv},
		val{hs.Path, FromHost}, val{ps.Path, FromPrefix}, val{d.Path, FromConfig}, val{DefaultPath, FromDefault})
	r.Profile, r.From["profile"] = pick(val{flags.Profile, FromFlag}, val{hs.Profile, FromHost},
		val{getenv("AWS_PROFILE"), FromEnv}, val{pa.Profile, FromPrefix}, val{da.Profile, FromConfig})
	// A region from the config belongs to the profile beside it: it is not
	// mixed with another account's profile (the SDK takes that profile's own region).
	paired := func(s Settings) string {
		if s.Profile == "" || s.Profile == r.Profile {
			return s.Region
		}
		return ""
	}
	r.Region, r.From["region"] = pick(val{flags.Region, FromFlag}, val{paired(hs), FromHost},
		val{getenv("AWS_REGION"), FromEnv}, val{getenv("AWS_DEFAULT_REGION"), FromEnv},
		val{paired(pa), FromPrefix}, val{paired(da), FromConfig})
	return r
}

type val struct {
	v   string
	src Source
}

func pick(vs ...val) (string, Source) {
	for _, v := range vs {
		if v.v != "" {
			return v.v, v.src
		}
	}
	return "", FromNone
}

// lookupHost finds the host entry of target: by alias, else by instance id.
func (f *File) lookupHost(target string) (*Host, string) {
	if target == "" {
		return nil, ""
	}
	if h, ok := f.Hosts[target]; ok {
		return &h, target
	}
	for _, a := range f.Aliases() {
		if h := f.Hosts[a]; h.ID != "" && h.ID == target {
			return &h, a
		}
	}
	return nil, ""
}

// prefixSettings picks the prefix entry: the host's own prefix, else the
// longest prefix p with target "p-…", else (no target: ls) the resolved
// prefix's entry. A target under no prefix (a Name tag, an address) gets none.
func (f *File) prefixSettings(target, prefix string, host *Host) Settings {
	if host != nil {
		if s, ok := f.Prefixes[host.Prefix]; ok {
			return s
		}
	}
	best := ""
	for p := range f.Prefixes {
		if strings.HasPrefix(target, p+"-") && len(p) > len(best) {
			best = p
		}
	}
	if best != "" {
		return f.Prefixes[best]
	}
	if target == "" {
		return f.Prefixes[prefix]
	}
	return Settings{}
}

// NameAliases maps each alias to the Name tag it follows (for target resolution).
func (f *File) NameAliases() map[string]string {
	out := map[string]string{}
	for a, h := range f.Hosts {
		if h.Name != "" {
			out[a] = h.Name
		}
	}
	return out
}

// StateDir is devgate's per-user state directory (key-push stamps, the name
// cache, cp journals, the failure log): os.UserCacheDir()/devgate, "" when
// the platform has none.
func StateDir() string {
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "devgate")
	}
	return ""
}

// CheckPrefix rejects prefixes ssh patterns or aliases cannot carry.
func CheckPrefix(p string) error {
	if p == "" {
		return errors.New("empty prefix")
	}
	return checkName("prefix", p)
}

// HasPrefix reports whether the config has a prefix entry for p.
func (f *File) HasPrefix(p string) bool {
	_, ok := f.Prefixes[p]
	return ok
}

// SetPrefix sets the entry of prefix p.
func (f *File) SetPrefix(p string, s Settings) {
	if f.Prefixes == nil {
		f.Prefixes = map[string]Settings{}
	}
	f.Prefixes[p] = s
}

// ClaimPrefix records a setup run of the set (p, profile, region) on prefix
// p's entry, which gives `<p>-*` (instances not listed yet) its account:
// the entry takes the set's profile and region unless a host of another set
// of p is in the config (then the entry keeps the set it has, and
// ClaimPrefix returns that set's profile and region and false). user, when
// not "", replaces the entry's user; the entry's other settings (bucket,
// path, an earlier user) are kept.
func (f *File) ClaimPrefix(p, profile, region, user string) (ownerProfile, ownerRegion string, claimed bool) {
	s, had := f.Prefixes[p]
	claimed = true
	if had && (s.Profile != profile || s.Region != region) {
		for _, h := range f.Hosts {
			if h.Prefix == p && h.OwnsAccount() && (h.Profile != profile || h.Region != region) {
				claimed = false
				break
			}
		}
	}
	if claimed {
		s.Profile, s.Region = profile, region
	}
	if user != "" {
		s.User = user
	}
	f.SetPrefix(p, s)
	return s.Profile, s.Region, claimed
}

// ReplaceSet replaces the hosts of one setup set (prefix, profile, region)
// with hosts, keeping every other host. alias names a host from its Name tag
// and id; an alias another set's host holds gets what tells the two sets
// apart appended, "-<region>" when the regions differ, else "-<profile>"
// (lower case, characters an alias cannot carry as '-'), then "-<id>", so
// that no alias is lost or ambiguous.
func (f *File) ReplaceSet(prefix, profile, region string, hosts []Host, alias func(name, id string) string) {
	for a, h := range f.Hosts {
		if h.Prefix == prefix && h.Profile == profile && h.Region == region {
			delete(f.Hosts, a)
		}
	}
	if f.Hosts == nil {
		f.Hosts = map[string]Host{}
	}
	// Stable order: by name, then id.
	sort.SliceStable(hosts, func(i, j int) bool {
		if hosts[i].Name != hosts[j].Name {
			return hosts[i].Name < hosts[j].Name
		}
		return hosts[i].ID < hosts[j].ID
	})
	count := map[string]int{}
	for _, h := range hosts {
		count[alias(h.Name, h.ID)]++
	}
	for _, h := range hosts {
		h.Prefix = prefix
		a := alias(h.Name, h.ID)
		if t, taken := f.Hosts[a]; taken && count[a] == 1 {
			switch {
			case region != "" && t.Region != region:
				a += "-" + region
			case profile != "" && t.Profile != profile:
				a += "-" + aliasPart(profile)
			}
		}
		if _, taken := f.Hosts[a]; taken || count[alias(h.Name, h.ID)] > 1 {
			a = alias(h.Name, h.ID) + "-" + h.ID
		}
		f.Hosts[a] = h
	}
}

// aliasPart is s in lower case with what an ssh alias cannot carry (spaces,
// quotes, ssh pattern characters, '/', '@', ':') as '-'.
func aliasPart(s string) string {
	return strings.Map(func(r rune) rune {
		if strings.ContainsRune(" \t\n*?!,\"'/@:", r) {
			return '-'
		}
		return unicode.ToLower(r)
	}, s)
}

// RemoveSet removes the hosts of prefix (only those of profile and region
// when not "") and, when no host of the prefix is left, its prefix entry.
// It returns how many hosts it removed.
func (f *File) RemoveSet(prefix, profile, region string) int {
	n := 0
	for a, h := range f.Hosts {
		if h.Prefix == prefix && (profile == "" || h.Profile == profile) && (region == "" || h.Region == region) {
			delete(f.Hosts, a)
			n++
		}
	}
	left := false
	for _, h := range f.Hosts {
		if h.Prefix == prefix {
			left = true
		}
	}
	if !left {
		delete(f.Prefixes, prefix)
	}
	return n
}
