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
		{name: "DEVGATE_USER beats host; host's account beats AWS_PROFILE", target: "devbox-gpu1",
			env:  map[string]string{"DEVGATE_USER": "envuser", "AWS_PROFILE": "envp", "AWS_REGION": "envr", "DEVGATE_PATH": "ssm"},
			want: Settings{Profile: "A", Region: "us-east-1", User: "envuser", Bucket: "global-bucket", Path: "ssm"},
			from: map[string]Source{"user": FromEnv, "profile": FromHost, "path": FromEnv}},
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
