package transfer

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/devgate/devgate/internal/sshconn"
)

// maxInFlight bounds the SFTP requests one session has in flight for one
// chunk: pkg/sftp's own bound per file (sshconn opens it with 64).
const maxInFlight = 64

// pieces runs op over [0, length) of a chunk in pieces of at most piece
// bytes (the session's SFTP request length: one request each), up to
// maxInFlight at once, handed out in order, and reports each piece's bytes
// to got as its answer arrives. It returns how many bytes from the start are
// done with no gap before them, and the error of the earliest piece that
// failed (ctx's error when ctx ended first; nil when all are done).
//
// When ctx ends, pieces calls abort (the caller closes the session) so that
// the requests in flight fail at once instead of waiting for their answers
// (a paced Session Manager session takes seconds to deliver a chunk's
// worth): the copy is over, and the bytes that arrived in order are the
// ones kept.
//
// op(lo, hi) moves bytes [lo, hi) of the chunk and returns how many it
// moved; fewer than hi-lo must come with an error (io.EOF for a source that
// ended early), as io.ReaderAt and io.WriterAt do.
func pieces(ctx context.Context, length, piece int64, op func(lo, hi int64) (int, error), got func(int64), abort func()) (int64, error) {
	if length <= 0 {
		return 0, nil
	}
	if piece <= 0 {
		piece = sshconn.DefaultPacket
	}
	n := (length + piece - 1) / piece
	workers := min(n, maxInFlight)
	type result struct {
		moved int64
		err   error
	}
	res := make([]result, n)
	finished := make([]bool, n)
	var mu sync.Mutex
	next := int64(0)
	stop := false
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				mu.Lock()
				if stop || next == n {
					mu.Unlock()
					return
				}
				k := next
				next++
				mu.Unlock()
				lo, hi := k*piece, min(length, (k+1)*piece)
				m, err := op(lo, hi)
				if m > 0 {
					got(int64(m))
				}
				if err == nil && int64(m) < hi-lo {
					err = io.ErrShortWrite
				}
				mu.Lock()
				res[k], finished[k] = result{int64(m), err}, true
				if err != nil {
					stop = true // no more pieces: the ones in flight finish
				}
				mu.Unlock()
			}
		})
	}
	stopAbort := context.AfterFunc(ctx, func() {
		mu.Lock()
		stop = true
		mu.Unlock()
		abort()
	})
	wg.Wait()
	aborted := !stopAbort()
	var done int64
	for k := range n {
		r := res[k]
		done += r.moved
		if !finished[k] || r.err != nil {
			err := r.err
			if aborted || err == nil { // a piece never taken, or failed because of the abort
				err = ctx.Err()
			}
			if err == nil {
				err = errors.New("transfer: piece not moved")
			}
			return done, err
		}
	}
	return done, nil
}

// arrivals passes the bytes of one chunk to Progress.Add as they arrive,
// at most every arrivalStep bytes or arrivalEvery (a terminal's bars take a
// channel round trip per update), and settles the count when the chunk's
// move ends: what was kept stays counted, the rest is taken back.
type arrivals struct {
	p    Progress
	name string

	mu       sync.Mutex
	pending  int64 // arrived, not yet reported
	reported int64 // reported to p so far
	last     time.Time
}

const (
	arrivalStep  = 1 << 20
	arrivalEvery = 200 * time.Millisecond
)

func (a *arrivals) add(n int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pending += n
	if now := time.Now(); a.pending >= arrivalStep || now.Sub(a.last) >= arrivalEvery {
		a.p.Add(a.name, a.pending)
		a.reported += a.pending
		a.pending, a.last = 0, now
	}
}

// settle makes the bytes reported for the chunk kept in all.
func (a *arrivals) settle(kept int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if d := kept - a.reported; d != 0 {
		a.p.Add(a.name, d)
	}
	a.reported, a.pending = kept, 0
}
