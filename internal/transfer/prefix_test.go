package transfer

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

const testChunk = 64 << 10

// partialFixture is a source's bytes and an empty partial file of its size
// on disk, as fresh leaves it.
func partialFixture(t *testing.T, size int64) (data []byte, partial string) {
	t.Helper()
	data = make([]byte, size)
	rand.Read(data)
	partial = filepath.Join(t.TempDir(), "out.bin"+PartialSuffix)
	if err := os.WriteFile(partial, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(partial, size); err != nil {
		t.Fatal(err)
	}
	return data, partial
}

// writeChunk writes chunk i of data (or of bad, when given) into the partial file, as move does.
func writeChunk(t *testing.T, partial string, data []byte, i int64) {
	t.Helper()
	f, err := os.OpenFile(partial, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	end := min(int64(len(data)), (i+1)*testChunk)
	if _, err := f.WriteAt(data[i*testChunk:end], i*testChunk); err != nil {
		t.Fatal(err)
	}
}

func sumOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func prefixCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestPrefixSumOutOfOrder: chunks land in any order (several sessions); the
// sum is the file's, with the last chunk short.
func TestPrefixSumOutOfOrder(t *testing.T) {
	ctx := prefixCtx(t)
	const size = 10*testChunk + 4321
	data, partial := partialFixture(t, size)
	p := newPrefixSum(partial, size, testChunk, nil)
	defer p.close()
	order := mrand.Perm(11)
	for k, i := range order {
		writeChunk(t, partial, data, int64(i))
		p.chunkDone(ctx, int64(i))
		if k == 5 {
			if _, ok := p.sum(ctx); ok {
				t.Fatal("sum with half the chunks missing: ok, want the caller to read the file")
			}
		}
	}
	got, ok := p.sum(ctx)
	if !ok || got != sumOf(data) {
		t.Fatalf("sum %s ok %v, want %s (order %v)", got, ok, sumOf(data), order)
	}
	// A chunk reported twice before it is hashed is still one write: no harm.
	q := newPrefixSum(partial, size, testChunk, nil)
	defer q.close()
	for i := range int64(11) {
		q.chunkDone(ctx, 10-i)
		q.chunkDone(ctx, 10-i)
	}
	if got, ok := q.sum(ctx); !ok || got != sumOf(data) {
		t.Fatalf("reversed, each twice: %s %v", got, ok)
	}
}

// TestPrefixSumRefetchedChunk: a chunk fails the check (its bytes were
// wrong) and is fetched again after it was hashed: the prefix sum is
// spoiled, and the file read whole (what finish then does) has the right sum.
func TestPrefixSumRefetchedChunk(t *testing.T) {
	ctx := prefixCtx(t)
	const size = 6 * testChunk
	data, partial := partialFixture(t, size)
	bad := append([]byte(nil), data...)
	bad[2*testChunk+17] ^= 0x40
	p := newPrefixSum(partial, size, testChunk, nil)
	defer p.close()
	for i := range int64(6) {
		writeChunk(t, partial, bad, i)
		p.chunkDone(ctx, i)
	}
	got, ok := p.sum(ctx)
	if !ok || got != sumOf(bad) || got == sumOf(data) {
		t.Fatalf("sum of the corrupt file %s ok %v, want %s (the file's bytes)", got, ok, sumOf(bad))
	}
	writeChunk(t, partial, data, 2) // fetched again
	p.chunkDone(ctx, 2)
	if got, ok := p.sum(ctx); ok {
		t.Fatalf("after chunk 2 was written again: sum %s ok, want not ok", got)
	}
	if s, err := (localSide{}).Sum(ctx, nil, partial); err != nil || s != sumOf(data) {
		t.Fatalf("the file read whole: %s %v, want %s", s, err, sumOf(data))
	}
}

// TestPrefixSumResume: a journal from a killed run says which chunks are in
// the partial file; they are read back from the file with the new ones.
func TestPrefixSumResume(t *testing.T) {
	ctx := prefixCtx(t)
	const size = 9*testChunk + 1
	data, partial := partialFixture(t, size)
	jpath := filepath.Join(filepath.Dir(partial), "out.bin"+JournalSuffix)
	h := journalHeader{V: 1, Src: "/src", Size: size, MtimeNs: 1, Chunk: testChunk, Partial: partial}
	j, err := createJournal(jpath, h)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int64{0, 1, 2, 5, 9} { // the earlier run's
		writeChunk(t, partial, data, i)
		j.done(i)
	}
	j.close()
	have, _, ok := loadJournal(jpath, h)
	if !ok || len(have) != 5 {
		t.Fatalf("journal: %v %v", have, ok)
	}
	p := newPrefixSum(partial, size, testChunk, have)
	defer p.close()
	for _, i := range []int64{4, 3, 8, 6, 7} {
		writeChunk(t, partial, data, i)
		p.chunkDone(ctx, i)
	}
	if got, ok := p.sum(ctx); !ok || got != sumOf(data) {
		t.Fatalf("resumed: %s %v, want %s", got, ok, sumOf(data))
	}
	// Every chunk from the journal and none moved in this run (a rerun after
	// the final check was cut short): the sum still comes from the file.
	q := newPrefixSum(partial, size, testChunk, map[int64]bool{0: true, 1: true, 2: true, 3: true, 4: true, 5: true, 6: true, 7: true, 8: true, 9: true})
	defer q.close()
	if got, ok := q.sum(ctx); !ok || got != sumOf(data) {
		t.Fatalf("all from the journal: %s %v", got, ok)
	}
}

// TestPrefixSumShortFileAndClose: a partial file cut short under the copy
// spoils the sum (never a sum of fewer bytes), an empty file has the empty
// sum, and close ends a hasher that waits for chunks that never come.
func TestPrefixSumShortFileAndClose(t *testing.T) {
	ctx := prefixCtx(t)
	const size = 4 * testChunk
	data, partial := partialFixture(t, size)
	for i := range int64(4) {
		writeChunk(t, partial, data, i)
	}
	os.Truncate(partial, size-10)
	p := newPrefixSum(partial, size, testChunk, map[int64]bool{0: true, 1: true, 2: true, 3: true})
	if got, ok := p.sum(ctx); ok {
		t.Fatalf("file 10 bytes short: sum %s ok", got)
	}
	p.close()

	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, nil, 0o600)
	e := newPrefixSum(empty, 0, testChunk, nil)
	if got, ok := e.sum(ctx); !ok || got != sumOf(nil) {
		t.Fatalf("empty file: %s %v", got, ok)
	}
	e.close()

	w := newPrefixSum(partial, size, testChunk, nil)
	w.chunkDone(ctx, 1) // chunk 0 never comes: the goroutine waits
	done := make(chan struct{})
	go func() { w.close(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("close did not end the hasher")
	}
	if _, ok := w.sum(ctx); ok {
		t.Fatal("sum after close: ok")
	}
}
