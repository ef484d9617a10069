package transfer

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPieces: every byte is counted as its piece arrives; a failed piece or
// a cancelled context keeps exactly the bytes done in order from the start;
// a cancel aborts the pieces in flight at once.
func TestPieces(t *testing.T) {
	const length, piece = 10*1000 + 7, 1000
	t.Run("all", func(t *testing.T) {
		var got atomic.Int64
		n, err := pieces(context.Background(), length, piece, func(lo, hi int64) (int, error) { return int(hi - lo), nil },
			func(k int64) { got.Add(k) }, func() { t.Error("abort without a cancel") })
		if n != length || err != nil || got.Load() != length {
			t.Fatalf("pieces = %d %v, counted %d", n, err, got.Load())
		}
	})
	t.Run("a piece fails", func(t *testing.T) {
		bad := errors.New("lost")
		n, err := pieces(context.Background(), length, piece, func(lo, hi int64) (int, error) {
			if lo == 4000 {
				return 300, bad // 300 bytes of it arrived
			}
			return int(hi - lo), nil
		}, func(int64) {}, func() {})
		if n != 4300 || !errors.Is(err, bad) {
			t.Fatalf("pieces = %d %v, want 4300 and the piece's error", n, err)
		}
	})
	t.Run("EOF", func(t *testing.T) {
		n, err := pieces(context.Background(), length, piece, func(lo, hi int64) (int, error) {
			if hi == length {
				return 3, io.EOF
			}
			return int(hi - lo), nil
		}, func(int64) {}, func() {})
		if n != length-4 || !errors.Is(err, io.EOF) {
			t.Fatalf("pieces = %d %v", n, err)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		release := make(chan struct{}) // closed by abort: the session's requests fail
		var once sync.Once
		var counted atomic.Int64
		start := time.Now()
		n, err := pieces(ctx, length, piece, func(lo, hi int64) (int, error) {
			if lo < 3000 {
				return int(hi - lo), nil
			}
			if lo == 3000 {
				cancel()
			}
			<-release // in flight until the abort
			return 0, errors.New("connection closed")
		}, func(k int64) { counted.Add(k) }, func() { once.Do(func() { close(release) }) })
		if n != 3000 || !errors.Is(err, context.Canceled) || counted.Load() != 3000 || time.Since(start) > 5*time.Second {
			t.Fatalf("pieces = %d %v, counted %d, after %s", n, err, counted.Load(), time.Since(start))
		}
	})
}

type recProgress struct {
	nopProgress
	mu  sync.Mutex
	sum int64
	n   int
}

func (p *recProgress) Add(_ string, n int64) {
	p.mu.Lock()
	p.sum += n
	p.n++
	p.mu.Unlock()
}

// TestArrivals: many small arrivals reach Progress in steps, and settle
// leaves exactly the kept bytes counted.
func TestArrivals(t *testing.T) {
	p := &recProgress{}
	a := &arrivals{p: p, name: "f", last: time.Now()}
	for range 64 {
		a.add(64 << 10) // 4 MiB in 64 KiB arrivals
	}
	if p.sum < 3<<20 || p.n > 8 {
		t.Fatalf("reported %d bytes in %d calls, want about 4 MiB in at most 8", p.sum, p.n)
	}
	a.settle(1 << 20) // only the first MiB came in order
	if p.sum != 1<<20 {
		t.Fatalf("after settle: %d", p.sum)
	}
	a.settle(1 << 20)
	if p.sum != 1<<20 {
		t.Fatalf("settle twice: %d", p.sum)
	}
}
