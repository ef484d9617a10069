package cli

import "testing"

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
