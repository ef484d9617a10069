package vscode

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailscale/hujson"
)

var update = flag.Bool("update", false, "rewrite golden files")

var aliases = []string{"devbox-gpu1", "devbox-big"}

func TestMergeKeepsEveryLine(t *testing.T) {
	in, err := os.ReadFile("testdata/commented.jsonc")
	if err != nil {
		t.Fatal(err)
	}
	out, err := Merge(in, 120, aliases)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(in), "\n") {
		if line == `    "remote.SSH.connectTimeout": 30,` {
			continue // the one value devgate raises
		}
		if !strings.Contains(string(out), line) {
			t.Errorf("line lost: %q", line)
		}
	}
	golden := "testdata/commented.golden"
	if *update {
		os.WriteFile(golden, out, 0o644)
	}
	want, _ := os.ReadFile(golden)
	if !bytes.Equal(out, want) {
		t.Fatalf("differs from %s:\n%s", golden, out)
	}
	var s map[string]any
	std, err := hujson.Standardize(append([]byte(nil), out...))
	if err != nil || json.Unmarshal(std, &s) != nil {
		t.Fatalf("result is not JSONC: %v\n%s", err, out)
	}
	if s[ConnectTimeoutKey] != float64(120) {
		t.Errorf("timeout %v", s[ConnectTimeoutKey])
	}
	rp := s[RemotePlatformKey].(map[string]any)
	if rp["work-box"] != "linux" || rp["devbox-gpu1"] != "linux" || rp["devbox-big"] != "linux" {
		t.Errorf("remotePlatform %v", rp)
	}
	for _, k := range []string{"remote.SSH.keepAlive", "useLocalServer"} {
		if strings.Contains(string(out), k) {
			t.Errorf("wrote %s", k)
		}
	}
	again, err := Merge(out, 120, aliases)
	if err != nil || !bytes.Equal(again, out) {
		t.Fatalf("not idempotent:\n%s", again)
	}
	if missing, err := Check(out, 120, aliases); err != nil || len(missing) != 0 {
		t.Fatalf("Check after merge: %v %v", missing, err)
	}
	if missing, _ := Check(in, 120, aliases); len(missing) != 3 {
		t.Fatalf("Check before merge: %v", missing)
	}
}

func TestMergeNeverLowersTimeout(t *testing.T) {
	in := []byte(`{"remote.SSH.connectTimeout": 300}`)
	out, err := Merge(in, 120, nil)
	if err != nil || !bytes.Equal(out, in) {
		t.Fatalf("%s %v", out, err)
	}
}

func TestMergeEmptyAndBad(t *testing.T) {
	out, err := Merge(nil, 120, aliases)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := Check(out, 120, aliases); err != nil || len(m) != 0 {
		t.Fatalf("empty file: %s %v %v", out, m, err)
	}
	for _, bad := range []string{`[1]`, `{"a": `, `{"remote.SSH.remotePlatform": 3}`} {
		if _, err := Merge([]byte(bad), 120, aliases); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSettingsPaths(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cases := []struct {
		goos, home string
		env        map[string]string
		want       string // the directory holding <product>/User/settings.json
	}{
		{"linux", "/home/u", nil, "/home/u/.config"},
		{"linux", "/home/u", map[string]string{"XDG_CONFIG_HOME": "/xdg"}, "/xdg"},
		{"linux", "/home/u", map[string]string{"XDG_CONFIG_HOME": "relative"}, "/home/u/.config"},
		{"linux", "/home/u", map[string]string{"XDG_CONFIG_HOME": "/xdg", "VSCODE_APPDATA": "/portable"}, "/portable"},
		{"darwin", "/Users/u", map[string]string{"XDG_CONFIG_HOME": "/xdg"}, "/Users/u/Library/Application Support"},
		{"windows", "/home/u", map[string]string{"APPDATA": `C:\Users\u\AppData\Roaming`}, `C:\Users\u\AppData\Roaming`},
		{"windows", "/home/u", map[string]string{"APPDATA": `C:\A`, "VSCODE_APPDATA": `D:\V`}, `D:\V`},
	}
	for _, c := range cases {
		ps := SettingsPaths(c.goos, c.home, env(c.env))
		if len(ps) != 5 {
			t.Fatalf("%d products", len(ps))
		}
		for i, name := range []string{"Code", "Code - Insiders", "VSCodium", "Cursor", "Windsurf"} {
			if want := filepath.Join(c.want, name, "User", "settings.json"); ps[i].Path != want || ps[i].Name != name {
				t.Errorf("%s %v: %s = %s, want %s", c.goos, c.env, name, ps[i].Path, want)
			}
		}
	}
}

func TestPlanApplyBacksUpAndIsIdempotent(t *testing.T) {
	home := t.TempDir()
	ps := SettingsPaths("linux", home, func(string) string { return "" })
	os.MkdirAll(filepath.Dir(ps[1].Path), 0o755) // only Insiders installed
	orig := []byte("{\n  // mine\n  \"a\": 1\n}\n")
	os.WriteFile(ps[1].Path, orig, 0o644)
	inst := Installed(ps)
	if len(inst) != 1 || inst[0].Name != "Code - Insiders" {
		t.Fatalf("Installed = %v", inst)
	}
	cs, err := Plan(inst, 120, aliases)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cs[0].Diff(), "+  \"remote.SSH.connectTimeout\": 120") {
		t.Fatalf("diff:\n%s", cs[0].Diff())
	}
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	bak, err := cs[0].Apply(now)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(bak); !bytes.Equal(b, orig) {
		t.Fatalf("backup %q", b)
	}
	cs, _ = Plan(inst, 120, aliases)
	if cs[0].Changed() {
		t.Fatalf("second plan changes:\n%s", cs[0].Diff())
	}
}

func FuzzMerge(f *testing.F) {
	seed, _ := os.ReadFile("testdata/commented.jsonc")
	f.Add(seed)
	f.Add([]byte("{}"))
	f.Add([]byte(`{"remote.SSH.remotePlatform": {}, "remote.SSH.connectTimeout": "x"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := Merge(in, 120, aliases)
		if err != nil {
			return
		}
		again, err := Merge(out, 120, aliases)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %v\n%s\n%s", err, out, again)
		}
		if m, err := Check(out, 120, aliases); err != nil || len(m) != 0 {
			t.Fatalf("check after merge: %v %v\n%s", m, err, out)
		}
	})
}

func TestMergeKeepsBOM(t *testing.T) {
	in := []byte("\xef\xbb\xbf{\n  \"a\": 1\n}\n")
	out, err := Merge(in, 120, aliases)
	if err != nil || !bytes.HasPrefix(out, []byte("\xef\xbb\xbf{")) {
		t.Fatalf("%q %v", out, err)
	}
	if m, err := Check(out, 120, aliases); err != nil || len(m) != 0 {
		t.Fatalf("%v %v", m, err)
	}
}
