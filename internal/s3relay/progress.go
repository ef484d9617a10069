package s3relay

import (
	"sync"

	"github.com/devgate/devgate/internal/transfer"
)

// twoLegs reports a relayed file at its own size: the relay moves every byte
// twice (instance → S3, S3 → here, or the reverse), and the copy is half done
// when one leg is. The relay's calls count both legs (totals of 2×size);
// twoLegs halves them, so a 50 MiB file shows 50 MiB, not 100.
type twoLegs struct {
	p        transfer.Progress
	mu       sync.Mutex
	moved    map[string]int64 // both legs
	reported map[string]int64
}

func newTwoLegs(p transfer.Progress) transfer.Progress {
	if p == nil {
		return nil
	}
	return &twoLegs{p: p, moved: map[string]int64{}, reported: map[string]int64{}}
}

func (t *twoLegs) Total(files int, bytes, resumed int64) { t.p.Total(files, bytes/2, resumed/2) }

func (t *twoLegs) FileStart(name string, size, done int64) {
	t.mu.Lock()
	t.moved[name], t.reported[name] = done, done/2
	t.mu.Unlock()
	t.p.FileStart(name, size/2, done/2)
}

func (t *twoLegs) Add(name string, n int64) {
	t.mu.Lock()
	t.moved[name] += n
	d := t.moved[name]/2 - t.reported[name]
	t.reported[name] += d
	t.mu.Unlock()
	if d != 0 {
		t.p.Add(name, d)
	}
}

func (t *twoLegs) FileDone(name string) { t.p.FileDone(name) }
