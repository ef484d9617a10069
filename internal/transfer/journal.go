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

// journal records finished chunks, one line each, after their bytes were
// written; a line cut short by a kill is ignored on load.
type journal struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

// loadJournal returns the finished chunks recorded at path if its header equals want.
func loadJournal(path string, want journalHeader) (map[int64]bool, bool) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return nil, false
	}
	var h journalHeader
	if json.Unmarshal(sc.Bytes(), &h) != nil || h != want {
		return nil, false
	}
	done := map[int64]bool{}
	n := (want.Size + want.Chunk - 1) / want.Chunk
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "chunk ")
		if !ok {
			continue
		}
		i, err := strconv.ParseInt(rest, 10, 64)
		if err == nil && i >= 0 && i < n {
			done[i] = true
		}
	}
	return done, true
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
