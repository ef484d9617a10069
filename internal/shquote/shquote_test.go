package shquote

import (
	"os/exec"
	"strings"
	"testing"
)

// shellRead has /bin/sh read the quoted words back and print each one
// NUL-terminated.
func shellRead(t testing.TB, line string) []string {
	t.Helper()
	out, err := exec.Command("sh", "-c", `for a in `+line+`; do printf '%s\0' "$a"; done`).Output()
	if err != nil {
		t.Fatalf("sh: %v (line %q)", err, line)
	}
	return strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
}

func TestQuote(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"/usr/local/bin/devgate", "/usr/local/bin/devgate"},
		{"", "''"},
		{"a b", "'a b'"},
		{"it's", `'it'\''s'`},
		{"a=b", "'a=b'"}, // an assignment as a first word
		{"~/x", "'~/x'"},
		{"$HOME", "'$HOME'"},
		{"x;rm -rf /", "'x;rm -rf /'"},
		{"eu-west-1", "eu-west-1"},
	} {
		if got := Quote(c.in); got != c.want {
			t.Errorf("Quote(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	words := []string{"plain", "two words", "it's", "$(touch /tmp/shquote-pwned)", "`id`", "tab\there", "new\nline", "'", "\\", "*", "ü"}
	got := shellRead(t, Join(words...))
	if strings.Join(got, "|") != strings.Join(words, "|") {
		t.Fatalf("sh read %q, want %q", got, words)
	}
}

// FuzzQuote: whatever the string (no NUL), sh reads Quote(s) back as s.
func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", "a", "'", "''", `'\''`, "a b", "\n", "$x", "!", "a=b", "\xff\xfe", "-n", "*?[a]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsRune(s, 0) {
			return
		}
		got := shellRead(t, Quote(s))
		if len(got) != 1 || got[0] != s {
			t.Fatalf("sh read Quote(%q) = %q back as %q", s, Quote(s), got)
		}
	})
}
