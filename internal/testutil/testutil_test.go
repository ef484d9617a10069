package testutil

import (
	"testing"
	"time"
)

func TestScaling(t *testing.T) {
	d, n := Deadline(time.Second), Size(64<<20)
	if Race {
		if d != 10*time.Second || n != 8<<20 || Size(3) != 1 {
			t.Fatalf("under -race: Deadline(1s)=%v Size(64 MiB)=%d Size(3)=%d", d, n, Size(3))
		}
		return
	}
	if d != time.Second || n != 64<<20 {
		t.Fatalf("without -race: Deadline(1s)=%v Size(64 MiB)=%d, want them unchanged", d, n)
	}
}
