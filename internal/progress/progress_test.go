package progress

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func TestLineMode(t *testing.T) {
	var out syncBuf
	c := NewCopy(&out, false, 4)
	c.Total(2, 10<<20, 2<<20)
	c.FileStart("a", 8<<20, 2<<20)
	c.Add("a", 3<<20)
	c.FileDone("a")
	c.mu.Lock()
	line := c.lineLocked()
	c.mu.Unlock()
	c.Close()
	for _, want := range []string{"5.0 MiB / 10.0 MiB (50%)", "1/2 files", "MB/s", "ETA"} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
}

func TestTerminalModeDoesNotBlock(t *testing.T) {
	var out syncBuf
	c := NewCopy(&out, true, 2)
	c.Total(1, 1<<20, 0)
	c.FileStart("f", 1<<20, 0)
	c.Add("f", 1<<19)
	c.Add("f", -1<<18) // a chunk taken back
	c.Add("f", 3<<18)
	c.FileDone("f")
	done := make(chan struct{})
	go func() { c.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked")
	}
	if !strings.Contains(out.b.String(), "total (1 file)") {
		t.Fatalf("no total bar in %q", out.b.String())
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 5 << 30: "5.0 GiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestLineModeSingleFile: one file has no "0/1 files" count, and at 100 %
// before it is verified the line says so instead of an ETA.
func TestLineModeSingleFile(t *testing.T) {
	var out syncBuf
	c := NewCopy(&out, false, 8)
	c.Total(1, 4<<20, 0)
	c.FileStart("m.pt", 4<<20, 0)
	c.Add("m.pt", 1<<20)
	c.mu.Lock()
	mid := c.lineLocked()
	c.mu.Unlock()
	c.Add("m.pt", 3<<20)
	c.mu.Lock()
	end := c.lineLocked()
	c.mu.Unlock()
	c.FileDone("m.pt")
	c.Close()
	if strings.Contains(mid, "files") || !strings.Contains(mid, "1.0 MiB / 4.0 MiB (25%)") || !strings.Contains(mid, "ETA") {
		t.Errorf("mid-copy line %q", mid)
	}
	if end != "4.0 MiB / 4.0 MiB (100%), verifying" {
		t.Errorf("line at 100%% before verification: %q", end)
	}
}
