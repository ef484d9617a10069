package transfer

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
)

// journalHeader identifies what a partial file is a copy of. A journal whose
// header differs from the source's current state is thrown away.
type journalHeader struct {
	V       int    `json:"v"`
	Src     string `json:"src"`
	Size    int64  `json:"size"`
	MtimeNs int64  `json:"mtime_ns"`
	Chunk   int64  `json:"chunk"`
	Partial string `json:"partial"`
}

// journal records finished chunks ("chunk I"), and the bytes in place from
// the start of a chunk whose move was cut short ("part I N"), one line each,
// after those bytes were written; a line cut short by a kill is ignored on
// load, and a later line about a chunk replaces an earlier one. Older
// devgates skip "part" lines (they move such a chunk whole).
type journal struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

// loadJournal returns the finished chunks recorded at path, and the bytes
// in place of chunks moved in part (0 < bytes < the chunk's length), if its
// header equals want.
func loadJournal(path string, want journalHeader) (done map[int64]bool, part map[int64]int64, ok bool) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return nil, nil, false
	}
	var h journalHeader
	if json.Unmarshal(sc.Bytes(), &h) != nil || h != want || want.Chunk <= 0 {
		return nil, nil, false
	}
	done, part = map[int64]bool{}, map[int64]int64{}
	n := (want.Size + want.Chunk - 1) / want.Chunk
	chunkLen := func(i int64) int64 { return min(want.Chunk, want.Size-i*want.Chunk) }
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "chunk "); ok {
			i, err := strconv.ParseInt(rest, 10, 64)
			if err == nil && i >= 0 && i < n {
				done[i] = true
				delete(part, i)
			}
			continue
		}
		if rest, ok := strings.CutPrefix(line, "part "); ok {
			is, ks, _ := strings.Cut(rest, " ")
			i, err1 := strconv.ParseInt(is, 10, 64)
			k, err2 := strconv.ParseInt(ks, 10, 64)
			if err1 == nil && err2 == nil && i >= 0 && i < n && k > 0 && k < chunkLen(i) {
				part[i] = k
				delete(done, i) // the chunk is being written again (a re-fetch cut short)
			}
		}
	}
	return done, part, true
}

// createJournal starts a journal at path with header h (replacing any).
func createJournal(path string, h journalHeader) (*journal, error) {
	b, _ := json.Marshal(h)
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return nil, err
	}
	return openJournal(path)
}

func openJournal(path string) (*journal, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	return &journal{path: path, f: f}, nil
}

// done records chunk i as finished.
func (j *journal) done(i int64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return errors.New("journal closed")
	}
	_, err := fmt.Fprintf(j.f, "chunk %d\n", i)
	return err
}

// part records that the first n bytes of chunk i are in place.
func (j *journal) part(i, n int64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return errors.New("journal closed")
	}
	_, err := fmt.Fprintf(j.f, "part %d %d\n", i, n)
	return err
}

func (j *journal) close() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f != nil {
		j.f.Close()
		j.f = nil
	}
}

// remove closes and deletes the journal.
func (j *journal) remove() {
	j.close()
	os.Remove(j.path)
}
