package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

const sample = `{
  // devgate's defaults
  "prefix": "devbox",
  "defaults": {"user": "admin", "bucket": "global-bucket"},
  "prefixes": {
    "devbox": {"profile": "A", "region": "us-east-1", "user": "ec2-user"},
    "devbox-b": {"profile": "B", "region": "eu-west-1", "path": "ssm"},
  },
  "hosts": {
    "devbox-gpu1": {"prefix": "devbox", "name": "gpu1", "id": "i-0123456789abcdef0", "user": "ubuntu", "profile": "A", "region": "us-east-1"},
    "devbox-b-cpu": {"prefix": "devbox-b", "name": "cpu", "profile": "B", "region": "eu-west-1"},
  },
}`

func TestResolvePrecedence(t *testing.T) {
	f, err := Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, target, prefix string
		flags                Settings
		env                  map[string]string
		want                 Settings
		from                 map[string]Source
	}{
		{name: "host", target: "devbox-gpu1",
			want: Settings{Profile: "A", Region: "us-east-1", User: "ubuntu", Bucket: "global-bucket", Path: "auto"},
			from: map[string]Source{"user": FromHost, "profile": FromHost, "bucket": FromConfig, "path": FromDefault}},
		{name: "host by id", target: "i-0123456789abcdef0",
			want: Settings{Profile: "A", Region: "us-east-1", User: "ubuntu", Bucket: "global-bucket", Path: "auto"}},
		{name: "flag beats all", target: "devbox-gpu1", flags: Settings{User: "root", Profile: "X", Region: "r", Path: "direct", Bucket: "bb"},
			env:  map[string]string{"DEVGATE_USER": "envuser", "AWS_PROFILE": "envp"},
			want: Settings{Profile: "X", Region: "r", User: "root", Bucket: "bb", Path: "direct"},
			from: map[string]Source{"user": FromFlag, "profile": FromFlag}},
		{name: "host's user and account beat DEVGATE_USER and AWS_PROFILE (ssh logs in as the host's User)", target: "devbox-gpu1",
			env:  map[string]string{"DEVGATE_USER": "envuser", "AWS_PROFILE": "envp", "AWS_REGION": "envr", "DEVGATE_PATH": "ssm"},
			want: Settings{Profile: "A", Region: "us-east-1", User: "ubuntu", Bucket: "global-bucket", Path: "ssm"},
			from: map[string]Source{"user": FromHost, "profile": FromHost, "path": FromEnv}},
		{name: "DEVGATE_USER beats the prefix's user", target: "devbox-new",
			env:  map[string]string{"DEVGATE_USER": "envuser"},
			want: Settings{Profile: "A", Region: "us-east-1", User: "envuser", Bucket: "global-bucket", Path: "auto"},
			from: map[string]Source{"user": FromEnv}},
		{name: "longest prefix", target: "devbox-b-new",
			want: Settings{Profile: "B", Region: "eu-west-1", User: "admin", Bucket: "global-bucket", Path: "ssm"},
			from: map[string]Source{"profile": FromPrefix, "user": FromConfig, "path": FromPrefix}},
		{name: "env beats prefix for account", target: "devbox-b-new", env: map[string]string{"AWS_PROFILE": "envp", "AWS_DEFAULT_REGION": "dr"},
			want: Settings{Profile: "envp", Region: "dr", User: "admin", Bucket: "global-bucket", Path: "ssm"}},
		{name: "a name under no prefix gets the defaults only", target: "gpu9",
			want: Settings{User: "admin", Bucket: "global-bucket", Path: "auto"}},
		{name: "no target (ls) gets the default prefix's entry", target: "",
			want: Settings{Profile: "A", Region: "us-east-1", User: "ec2-user", Bucket: "global-bucket", Path: "auto"}},
		{name: "a flag's profile is not paired with another account's region", target: "devbox-x", flags: Settings{Profile: "B"},
			want: Settings{Profile: "B", User: "ec2-user", Bucket: "global-bucket", Path: "auto"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := f.Resolve(c.target, c.flags, c.prefix, env(c.env))
			if r.Settings != c.want {
				t.Fatalf("got %+v, want %+v", r.Settings, c.want)
			}
			for k, v := range c.from {
				if r.From[k] != v {
					t.Errorf("From[%s] = %q, want %q", k, r.From[k], v)
				}
			}
		})
	}
}

func TestResolveEmptyConfig(t *testing.T) {
	var f *File
	r := f.Resolve("gpu1", Settings{}, "", env(nil))
	if r.User != DefaultUser || r.Prefix != DefaultPrefix || r.Path != DefaultPath || r.Profile != "" || r.Region != "" {
		t.Fatalf("%+v", r)
	}
	if r.From["profile"] != FromNone || r.From["user"] != FromDefault {
		t.Fatalf("%v", r.From)
	}
}

func TestLoadSaveRoundTrip(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "config.json")
	f, err := Load(p)
	if err != nil || len(f.Hosts) != 0 {
		t.Fatalf("missing file: %v %+v", err, f)
	}
	f.Hosts = map[string]Host{"devbox-a": {Prefix: "devbox", Name: "a", Settings: Settings{User: "ubuntu"}}}
	f.Defaults.Path = "ssm"
	if err := f.Save(p); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", fi.Mode(), err)
	}
	g, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(g.Marshal()) != string(f.Marshal()) {
		t.Fatalf("round trip:\n%s\n%s", g.Marshal(), f.Marshal())
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"defaults": {"path": "vpn"}}`, `path "vpn"`},
		{`{"hosts": {"devbox-*": {"prefix": "devbox"}}}`, "pattern"},
		{`{"defaults": {"usr": "x"}}`, `unknown field "usr"`},
		{`{"defaults": {"user": "a b"}}`, "spaces"},
		{`{`, "EOF"},
		{`{} {}`, "after top-level value"},
	} {
		_, err := Parse([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%s) = %v, want an error with %q", c.in, err, c.want)
		}
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "config.json")
	os.WriteFile(p, []byte(`{"defaults": 3}`), 0o600)
	_, err := Load(p)
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Path != p {
		t.Fatalf("Load of a bad file: %v", err)
	}
}

func TestDefaultFile(t *testing.T) {
	if got := DefaultFile(env(map[string]string{EnvConfig: "/x/y.json"})); got != "/x/y.json" {
		t.Fatal(got)
	}
	t.Setenv("XDG_CONFIG_HOME", "/cfg")
	if got := DefaultFile(env(nil)); got != "/cfg/devgate/config.json" {
		t.Fatal(got)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte(`{"hosts":{"a":{"prefix":"p","user":"u"}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		// What parses re-parses to the same thing.
		c2, err := Parse(c.Marshal())
		if err != nil {
			t.Fatalf("re-parse: %v\n%s", err, c.Marshal())
		}
		if string(c2.Marshal()) != string(c.Marshal()) {
			t.Fatalf("not stable")
		}
		_ = c.Resolve("x", Settings{}, "", func(string) string { return "" })
	})
}

// TestTwoSetsOfOnePrefix: a set written without a profile (credentials from
// the environment) and a later `setup --profile A` under the same prefix and
// region. The first set's hosts keep no profile (the later set's profile is
// not filled in from the prefix's entry), the prefix's entry keeps its set,
// its user and bucket, and the second set's aliases say what differs.
func TestTwoSetsOfOnePrefix(t *testing.T) {
	f := &File{}
	alias := func(name, id string) string { return "devbox-" + name }
	if _, _, ok := f.ClaimPrefix("devbox", "", "us-east-1", "newdev"); !ok {
		t.Fatal("the first set did not get the new prefix's entry")
	}
	f.Prefixes["devbox"] = Settings{Region: "us-east-1", User: "newdev", Bucket: "relay"}
	f.ReplaceSet("devbox", "", "us-east-1", []Host{{Name: "gpu1", ID: "i-1", Settings: Settings{User: "ubuntu", Region: "us-east-1"}}}, alias)

	op, or, ok := f.ClaimPrefix("devbox", "A", "us-east-1", "")
	if ok || op != "" || or != "us-east-1" {
		t.Fatalf("second set claimed the prefix: %q %q %v", op, or, ok)
	}
	if got := f.Prefixes["devbox"]; got != (Settings{Region: "us-east-1", User: "newdev", Bucket: "relay"}) {
		t.Fatalf("prefix entry %+v", got)
	}
	f.ReplaceSet("devbox", "A", "us-east-1", []Host{{Name: "gpu1", ID: "i-1", Settings: Settings{User: "ubuntu", Profile: "A", Region: "us-east-1"}}}, alias)
	if got := f.Aliases(); strings.Join(got, " ") != "devbox-gpu1 devbox-gpu1-a" {
		t.Fatalf("aliases %v, want devbox-gpu1 devbox-gpu1-a", got)
	}

	noenv := env(nil)
	r := f.Resolve("devbox-gpu1", Settings{}, "", noenv)
	if r.Profile != "" || r.Region != "us-east-1" || r.User != "ubuntu" || r.Bucket != "relay" {
		t.Fatalf("first set's host resolved to %+v", r.Settings)
	}
	if r := f.Resolve("devbox-gpu1", Settings{}, "", env(map[string]string{"AWS_PROFILE": "envp"})); r.Profile != "envp" {
		t.Fatalf("a host without a profile takes AWS_PROFILE as its ProxyCommand would: got %q", r.Profile)
	}
	if r := f.Resolve("devbox-gpu1-a", Settings{}, "", noenv); r.Profile != "A" || r.Region != "us-east-1" {
		t.Fatalf("second set's host resolved to %+v", r.Settings)
	}
	// A hand-written host that names no account still takes the prefix's.
	f.Hosts["devbox-hand"] = Host{Prefix: "devbox", Settings: Settings{User: "root"}}
	f.Prefixes["devbox"] = Settings{Profile: "P", Region: "eu-west-1"}
	if r := f.Resolve("devbox-hand", Settings{}, "", noenv); r.Profile != "P" || r.Region != "eu-west-1" || r.User != "root" {
		t.Fatalf("hand-written host resolved to %+v", r.Settings)
	}

	// Once the other set is gone, a run of the second set takes the entry.
	f.RemoveSet("devbox", "", "us-east-1")
	delete(f.Hosts, "devbox-hand")
	if p, r, ok := f.ClaimPrefix("devbox", "A", "us-east-1", "ec2-user"); !ok || p != "A" || r != "us-east-1" || f.Prefixes["devbox"].User != "ec2-user" {
		t.Fatalf("claim after removal: %q %q %v %+v", p, r, ok, f.Prefixes["devbox"])
	}
}

// TestReplaceSetSuffix: an alias another set holds gets the region when the
// regions differ, else the profile, else the id.
func TestReplaceSetSuffix(t *testing.T) {
	alias := func(name, id string) string { return "devbox-" + name }
	f := &File{}
	set := func(profile, region, id string) { // as setup writes a set's host
		f.ReplaceSet("devbox", profile, region, []Host{{Name: "gpu1", ID: id, Settings: Settings{Profile: profile, Region: region}}}, alias)
	}
	set("A", "us-east-1", "i-1")
	set("A", "eu-west-1", "i-2")
	set("Team B/x", "us-east-1", "i-3")
	set("A", "us-east-1", "i-1") // again: the same alias
	got := map[string]string{}
	for a, h := range f.Hosts {
		got[a] = h.ID
	}
	want := map[string]string{"devbox-gpu1": "i-1", "devbox-gpu1-eu-west-1": "i-2", "devbox-gpu1-team-b-x": "i-3"}
	if len(got) != len(want) {
		t.Fatalf("aliases %v, want %v", got, want)
	}
	for a, id := range want {
		if got[a] != id {
			t.Fatalf("aliases %v, want %v", got, want)
		}
	}
}
