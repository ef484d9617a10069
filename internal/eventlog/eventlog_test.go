package eventlog

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAppendLastRotate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	l := Open(dir)
	big := strings.Repeat("x", 1500)
	const n = 400 // ~600 KiB of lines: more than two generations
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := l.Append(Event{Kind: KindFailure, Command: "connect", Target: "devbox-gpu1", Code: 10,
				Message: fmt.Sprintf("event %d %s", i, big), Hint: "fix it"}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	st, err := os.Stat(l.Path())
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > MaxSize || st.Mode().Perm() != 0o600 {
		t.Fatalf("log %d bytes mode %v: want ≤ %d and 0600", st.Size(), st.Mode().Perm(), MaxSize)
	}
	if ds, _ := os.Stat(dir); ds.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v", ds.Mode().Perm())
	}
	b, _ := os.ReadFile(l.Path())
	for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if !strings.HasPrefix(line, "{") || !strings.HasSuffix(line, "}") {
			t.Fatalf("line %d is not one whole event: %.80q", i, line)
		}
	}
	last, err := l.Last(KindFailure, 3)
	if err != nil || len(last) != 3 {
		t.Fatalf("Last: %d %v", len(last), err)
	}
	if !last[0].Time.After(last[2].Time) && !last[0].Time.Equal(last[2].Time) {
		t.Fatalf("not newest first: %v %v", last[0].Time, last[2].Time)
	}
	if last[0].Code != 10 || last[0].Hint != "fix it" || last[0].Target != "devbox-gpu1" || last[0].PID != os.Getpid() {
		t.Fatalf("event %+v", last[0])
	}
	if p, _ := l.Last(KindProgress, 5); len(p) != 0 {
		t.Fatalf("progress events %v", p)
	}
}

func TestScrub(t *testing.T) {
	in := "GET https://bucket.s3.amazonaws.com/k?X-Amz-Signature=abc&X-Amz-Credential=AKIA failed:\nwss://ssmmessages.us-east-1.amazonaws.com/v1/data-channel/s?role=publish_subscribe&token=t"
	got := Scrub(in)
	for _, bad := range []string{"abc", "AKIA", "token=t", "\n"} {
		if strings.Contains(got, bad) {
			t.Fatalf("Scrub kept %q: %s", bad, got)
		}
	}
	if !strings.Contains(got, "https://bucket.s3.amazonaws.com/k?…") {
		t.Fatalf("Scrub: %s", got)
	}
}

func TestDisabledAndAgo(t *testing.T) {
	if err := Open("").Append(Event{Message: "x"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for d, want := range map[time.Duration]string{10 * time.Second: "just now", 3 * time.Minute: "3 min ago",
		5 * time.Hour: "5 h ago", 72 * time.Hour: "3 days ago"} {
		if got := Ago(now, now.Add(-d)); got != want {
			t.Errorf("Ago(%v) = %q, want %q", d, got, want)
		}
	}
}
