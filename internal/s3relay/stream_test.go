package s3relay

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// decodeInShell has /bin/sh decode an encoded path the way the job script does.
func decodeInShell(t testing.TB, enc string) string {
	t.Helper()
	out, err := exec.Command("sh", "-c", `set -f; set -- $1; F=$(printf '%b_' "$1"); F=${F%_}; printf '%s' "$F"`, "_", enc).Output()
	if err != nil {
		t.Fatalf("sh: %v (%q)", err, enc)
	}
	return string(out)
}

// FuzzEncodePath: whatever the path (no NUL), encodePath gives one word
// without blanks, quotes or glob characters, and the job script's decoding
// (printf %b in sh) gives the path back.
func FuzzEncodePath(f *testing.F) {
	for _, s := range []string{"/tmp/a b/c", "x\ny\n", "it's", `a\nb`, "$(id)", "*?[a]", "ü/ß", "\xff", "-n", "%s%b", "trailing\n\n", "0777"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsRune(s, 0) {
			return
		}
		enc := encodePath(s)
		if strings.ContainsAny(enc, " \t\n'\"*?[$`") {
			t.Fatalf("encodePath(%q) = %q is not one plain word", s, enc)
		}
		if got := decodeInShell(t, enc); got != s {
			t.Fatalf("sh decoded encodePath(%q) = %q as %q", s, enc, got)
		}
	})
}

// FuzzParseAnswer: no line from the instance makes the answer parser
// panic; what it accepts has a positive id and a status.
func FuzzParseAnswer(f *testing.F) {
	for _, s := range []string{"1 ok", "12 ok \"etag\"", "3 err part 1 failed", "x ok", "-1 ok", "5", "", "99999999999999999999 ok", "\t7\tbad\tabc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		id, fields, ok := parseAnswer(line)
		if ok && (id <= 0 || len(fields) == 0 || fields[0] == "") {
			t.Fatalf("parseAnswer(%q) = %d %q", line, id, fields)
		}
	})
}

// FuzzTreeJournal: a journal file of any content is read without a panic;
// one that is not a journal of the same copy is ignored (a new copy).
func FuzzTreeJournal(f *testing.F) {
	want := treeState{V: 1, Dir: "down", Src: "i-1:/data", Dst: "/tmp/out", PartSize: 16 << 20, Bucket: "b", Prefix: "devgate-cp/x/"}
	good, _ := json.Marshal(treeState{V: 1, Dir: "down", Src: "i-1:/data", Dst: "/tmp/out", PartSize: 16 << 20, Bucket: "b", Prefix: "devgate-cp/old/",
		Files: map[string]*fileState{"data/a": {Size: 3, MtimeNs: 1, Complete: true, Ranges: map[int32]bool{1: true}}}})
	for _, s := range []string{string(good), "", "{}", `{"v":1,"files":{"a":null}}`, `{"v":1,"dir":"down","src":"i-1:/data","dst":"/tmp/out","part_size":16777216,"bucket":"b","prefix":"p","files":{"a":null}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		j0, _ := openTreeJournal(dir, want)
		path := j0.path
		j0.remove()
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		j, resumed := openTreeJournal(dir, want)
		defer j.remove()
		if !resumed && j.s.Prefix != want.Prefix {
			t.Fatalf("a journal not resumed kept prefix %q", j.s.Prefix)
		}
		// Every file state reads and edits without a panic, null entries included.
		for rel := range j.s.Files {
			fs := j.file(rel, 3, time.Unix(0, 1))
			j.edit(rel, func(x *fileState) { x.Complete = fs.Complete })
			j.rangeDone(rel, 1)
		}
		_ = filepath.Base(path)
	})
}
