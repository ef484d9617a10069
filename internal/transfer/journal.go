package transfer

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
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

// resumes reports whether a journal with header h was written for the copy
// want: the same version, source, size and chunk length; the same partial
// file, as written or, for one written as a relative path by an older
// devgate, as an absolute path resolved here (a download's header holds the
// absolute path: the same file typed as d, ./d or /abs/d); and the same
// mtime, where a whole-second mtime matches any mtime in its second. A run
// whose sub-second lookup on the instance failed (a slow shell, a Ctrl-C
// during it) knows the mtime to the second only, and threw away a journal of
// hours that way; the whole-file sha256 checks the bytes against the
// source's at the end whatever the mtime said.
func (h journalHeader) resumes(want journalHeader) bool {
	if h.V != want.V || h.Src != want.Src || h.Size != want.Size || h.Chunk != want.Chunk {
		return false
	}
	if h.Partial != want.Partial {
		a, err := filepath.Abs(h.Partial)
		if filepath.IsAbs(h.Partial) || !filepath.IsAbs(want.Partial) || err != nil || a != want.Partial {
			return false
		}
	}
	if h.MtimeNs == want.MtimeNs {
		return true
	}
	ht, wt := time.Unix(0, h.MtimeNs), time.Unix(0, want.MtimeNs)
	return ht.Unix() == wt.Unix() && (ht.Nanosecond() == 0 || wt.Nanosecond() == 0)
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
	if json.Unmarshal(sc.Bytes(), &h) != nil || !h.resumes(want) || want.Chunk <= 0 {
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
