package cli

import (
	"runtime/debug"
	"testing"
)

// TestDirectSessions: a single file on the direct path gets one session per
// 64 MiB, at most -j and at most two per CPU; an unknown size gets -j.
func TestDirectSessions(t *testing.T) {
	for _, c := range []struct {
		max  int
		size int64
		cpus int
		want int
	}{
		{16, 3 << 20, 2, 1},
		{16, 1 << 30, 2, 4}, // bench/hybrid.sh's 1 GiB on this 2-core machine
		{16, 1 << 30, 16, 16},
		{4, 256 << 20, 2, 4}, // TestE2EDirectPathWithVPN's
		{8, 200 << 20, 64, 4},
		{16, 0, 2, 16},
		{1, 1 << 30, 8, 1},
		{16, 1 << 30, 0, 1},
	} {
		if got := directSessions(c.max, c.size, c.cpus); got != c.want {
			t.Errorf("directSessions(%d, %d, %d) = %d, want %d", c.max, c.size, c.cpus, got, c.want)
		}
	}
}

// TestCopyGC: a copy raises the collector's target to copyGCPercent, and
// leaves it alone when GOGC is set.
func TestCopyGC(t *testing.T) {
	old := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(old) })
	t.Setenv("GOGC", "")
	copyGC()
	if got := debug.SetGCPercent(100); got != copyGCPercent {
		t.Fatalf("GOGC unset: percent %d, want %d", got, copyGCPercent)
	}
	t.Setenv("GOGC", "100")
	copyGC()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GOGC=100: percent %d, want it kept", got)
	}
}
