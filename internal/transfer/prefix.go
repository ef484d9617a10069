package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"os"
	"sync"
)

// prefixSum hashes a download's partial file in order while its chunks
// arrive, so that the check after the last chunk does not read and hash the
// whole file then (about half a second per GiB here, after the transfer).
//
// A goroutine reads back from the file, in order, every chunk that has been
// reported written (done) once all chunks before it are hashed; chunks a
// journal had before this run are reported at the start and read back
// likewise. The sum covers the bytes of the file as they are after their
// chunk was written, exactly what reading the file after the last chunk
// gives unless a chunk is written again after it was hashed (a chunk fetched
// again after a failed check): that spoils the sum, and sum then says so and
// the caller reads the whole file as before. It holds an open file only
// while its goroutine runs (from the first chunk moved in this run until
// the last one is hashed, or close).
type prefixSum struct {
	path        string
	size, chunk int64
	n           int64 // chunks

	mu      sync.Mutex
	ready   map[int64]bool // chunks written, not yet hashed
	next    int64          // chunks [0, next) are hashed
	reading int64          // the chunk being read and hashed (-1: none)
	spoiled error          // why the sum no longer describes the file (nil: it does)
	started bool
	closed  bool
	wake    chan struct{} // buffered 1: something became ready, or close
	stop    chan struct{}
	done    chan struct{} // closed when the goroutine ends
	h       hash.Hash
}

// errRewritten spoils a sum whose chunk was written again after it was hashed.
var errRewritten = errors.New("a chunk was written again after it was hashed")

// newPrefixSum makes the hasher of the partial file at path of size bytes
// in chunks of chunk bytes, with the chunks in have already written (a
// journal's). Nothing runs until the first done or sum.
func newPrefixSum(path string, size, chunk int64, have map[int64]bool) *prefixSum {
	p := &prefixSum{path: path, size: size, chunk: chunk, n: (size + chunk - 1) / chunk,
		ready: map[int64]bool{}, reading: -1, wake: make(chan struct{}, 1), stop: make(chan struct{}),
		done: make(chan struct{}), h: sha256.New()}
	for i := range have {
		if i >= 0 && i < p.n {
			p.ready[i] = true
		}
	}
	return p
}

// chunkDone reports that chunk i's bytes are in the file (its write returned).
func (p *prefixSum) chunkDone(ctx context.Context, i int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.spoiled != nil {
		return
	}
	if i < p.next || i == p.reading {
		p.spoiled = errRewritten
		return
	}
	p.ready[i] = true
	p.startLocked(ctx)
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *prefixSum) startLocked(ctx context.Context) {
	if !p.started {
		p.started = true
		go p.run(ctx)
	}
}

// sum waits until every chunk is hashed and returns the file's sha256 as
// lowercase hex; ok is false when the sum cannot stand for the file (a
// chunk never reported, one written again after it was hashed, a read that
// failed): the caller then hashes the file itself.
func (p *prefixSum) sum(ctx context.Context) (sum string, ok bool) {
	p.mu.Lock()
	if p.closed || p.spoiled != nil || p.next+int64(len(p.ready))+b2i(p.reading >= 0) != p.n {
		p.mu.Unlock()
		return "", false
	}
	p.startLocked(ctx)
	select {
	case p.wake <- struct{}{}:
	default:
	}
	p.mu.Unlock()
	select {
	case <-p.done:
	case <-ctx.Done():
		return "", false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.spoiled != nil || p.next != p.n {
		return "", false
	}
	return hex.EncodeToString(p.h.Sum(nil)), true
}

// close stops the goroutine (if it runs) and waits for it.
func (p *prefixSum) close() {
	p.mu.Lock()
	started := p.started
	p.started = true // no goroutine starts after close
	if !p.closed {
		p.closed = true
		close(p.stop)
	}
	p.mu.Unlock()
	if started {
		<-p.done
	}
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// run hashes ready chunks in order until all are hashed, the sum is
// spoiled, or stop or ctx ends it.
func (p *prefixSum) run(ctx context.Context) {
	defer close(p.done)
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	buf := make([]byte, min(p.chunk, 1<<20))
	for {
		p.mu.Lock()
		for p.spoiled == nil && p.next < p.n && p.ready[p.next] {
			i := p.next
			delete(p.ready, i)
			p.reading = i
			p.mu.Unlock()
			err := p.hashChunk(&f, i, buf)
			p.mu.Lock()
			p.reading = -1
			if err != nil && p.spoiled == nil {
				p.spoiled = err
			}
			if p.spoiled == nil {
				p.next++
			}
		}
		finished := p.spoiled != nil || p.next == p.n
		p.mu.Unlock()
		if finished {
			return
		}
		select {
		case <-p.wake:
		case <-p.stop:
			return
		case <-ctx.Done():
			return
		}
	}
}

// hashChunk reads chunk i from the file (opened on first use) into the hash.
func (p *prefixSum) hashChunk(f **os.File, i int64, buf []byte) error {
	if *f == nil {
		var err error
		if *f, err = os.Open(p.path); err != nil {
			return err
		}
	}
	off := i * p.chunk
	end := min(off+p.chunk, p.size)
	for off < end {
		select {
		case <-p.stop:
			return errors.New("stopped")
		default:
		}
		b := buf[:min(int64(len(buf)), end-off)]
		n, err := (*f).ReadAt(b, off)
		if n < len(b) {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // the file is shorter than the copy
			}
			return err
		}
		p.h.Write(b)
		off += int64(n)
	}
	return nil
}
