package eventlog

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLast: any file content (a truncated line, garbage, a foreign file)
// reads back without a panic, and only whole events come out.
func FuzzLast(f *testing.F) {
	f.Add([]byte(`{"time":"2026-12-01T00:00:00Z","kind":"failure","command":"connect","code":10,"message":"m","pid":1}` + "\n"))
	f.Add([]byte("{\"time\":\"2026-12-01T00:00:00Z\",\"kind\":\"fail"))
	f.Add([]byte("\x00\xff\n\n{}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, FileName), b, 0o600); err != nil {
			t.Fatal(err)
		}
		evs, err := Open(dir).Last("", 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.Time.IsZero() {
				t.Fatalf("an event without a time came out: %+v", e)
			}
		}
	})
}
