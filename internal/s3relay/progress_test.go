package s3relay

import (
	"sync"
	"testing"
)

type recorder struct {
	mu                 sync.Mutex
	total, size, added int64
}

func (r *recorder) Total(_ int, bytes, _ int64)       { r.total = bytes }
func (r *recorder) FileStart(_ string, size, _ int64) { r.size = size }
func (r *recorder) Add(_ string, n int64)             { r.mu.Lock(); r.added += n; r.mu.Unlock() }
func (r *recorder) FileDone(string)                   {}

// TestTwoLegsReportsTheFileSize: a 50 MiB file relayed (2 × 50 MiB moved)
// shows 50 MiB in total, half at the end of the first leg.
func TestTwoLegsReportsTheFileSize(t *testing.T) {
	r := &recorder{}
	p := newTwoLegs(r)
	const size = 50 << 20
	p.Total(1, 2*size, 0)
	p.FileStart("m.pt", 2*size, 0)
	for i := 0; i < size/4096; i++ { // first leg, in odd pieces
		p.Add("m.pt", 4095)
		p.Add("m.pt", 1)
	}
	if r.added != size/2 {
		t.Fatalf("after one leg: %d, want %d", r.added, size/2)
	}
	p.Add("m.pt", size)
	if r.total != size || r.size != size || r.added != size {
		t.Fatalf("total %d, file %d, added %d; want %d each", r.total, r.size, r.added, size)
	}
	if newTwoLegs(nil) != nil {
		t.Fatal("newTwoLegs(nil) must stay nil (quiet)")
	}
}
