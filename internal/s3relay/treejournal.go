package s3relay

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/devgate/devgate/internal/atomicfile"
)

// treeState is what a folder relay has done, kept so that the same command
// again continues: per file, its multipart upload (the parts themselves are
// listed from S3), whether its object is whole in S3, the source's sha256
// when known, and the ranges already in its partial file. Files already at
// the destination are not in it: the listing finds them in place. The
// first fields identify the copy; a journal whose identity differs is
// ignored.
type treeState struct {
	V        int    `json:"v"`
	Dir      string `json:"dir"` // "down" or "up"
	Src      string `json:"src"`
	Dst      string `json:"dst"`
	PartSize int64  `json:"part_size"`
	Bucket   string `json:"bucket"`

	Prefix string                `json:"prefix"` // every object of the copy is Prefix + the file's Rel
	Files  map[string]*fileState `json:"files,omitempty"`
}

// fileState is one file of a folder relay. A file whose size or mtime
// differs from the journaled one starts over.
type fileState struct {
	Size     int64          `json:"size"`
	MtimeNs  int64          `json:"mtime_ns"`
	UploadID string         `json:"upload_id,omitempty"`
	Complete bool           `json:"complete,omitempty"`
	Sum      string         `json:"sha256,omitempty"` // of the source, as read when its object was made (downloads)
	Ranges   map[int32]bool `json:"ranges,omitempty"`
}

// treeJournal saves its state at most every saveEvery (and at flush), not at
// every change: a folder of many small files would otherwise rewrite the
// whole journal once per part. What a kill loses is the last moments'
// progress, which the next run does again (never a part marked done that
// is not).
type treeJournal struct {
	path  string
	mu    sync.Mutex
	s     treeState
	dirty bool
	stop  chan struct{}
	wg    sync.WaitGroup
}

const saveEvery = 200 * time.Millisecond

func openTreeJournal(dir string, want treeState) (j *treeJournal, resumed bool) {
	j = &treeJournal{s: want, stop: make(chan struct{})}
	if j.s.Files == nil {
		j.s.Files = map[string]*fileState{}
	}
	if dir != "" {
		h := sha256.Sum256([]byte("tree\n" + want.Dir + "\n" + want.Src + "\n" + want.Dst))
		j.path = filepath.Join(dir, "relay-tree-"+hex.EncodeToString(h[:12])+".json")
		if b, err := os.ReadFile(j.path); err == nil {
			var got treeState
			if json.Unmarshal(b, &got) == nil && got.V == want.V && got.Dir == want.Dir && got.Src == want.Src && got.Dst == want.Dst &&
				got.PartSize == want.PartSize && got.Bucket == want.Bucket && got.Prefix != "" {
				if got.Files == nil {
					got.Files = map[string]*fileState{}
				}
				j.s, resumed = got, true
			}
		}
	}
	j.dirty = true
	j.wg.Add(1)
	go j.saver()
	return j, resumed
}

func (j *treeJournal) saver() {
	defer j.wg.Done()
	t := time.NewTicker(saveEvery)
	defer t.Stop()
	for {
		select {
		case <-j.stop:
			return
		case <-t.C:
			j.save()
		}
	}
}

// save writes the state if it changed (0600, atomically).
func (j *treeJournal) save() error {
	j.mu.Lock()
	if !j.dirty || j.path == "" {
		j.mu.Unlock()
		return nil
	}
	b, err := json.Marshal(j.s)
	j.dirty = false
	j.mu.Unlock()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(j.path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(j.path, b, 0o600)
}

// file returns the state of the file rel of size and mtime, a new one when
// the journal has none or one of another size or mtime.
func (j *treeJournal) file(rel string, size int64, mtime time.Time) fileState {
	j.mu.Lock()
	defer j.mu.Unlock()
	f := j.s.Files[rel]
	if f == nil || f.Size != size || f.MtimeNs != mtime.UnixNano() {
		f = &fileState{Size: size, MtimeNs: mtime.UnixNano()}
		j.s.Files[rel] = f
		j.dirty = true
	}
	c := *f
	c.Ranges = map[int32]bool{}
	for k, v := range f.Ranges {
		c.Ranges[k] = v
	}
	return c
}

// known reports whether the journal has a state for file rel.
func (j *treeJournal) known(rel string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.s.Files[rel] != nil
}

// edit changes the state of file rel.
func (j *treeJournal) edit(rel string, fn func(f *fileState)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	f := j.s.Files[rel]
	if f == nil {
		f = &fileState{}
		j.s.Files[rel] = f
	}
	fn(f)
	j.dirty = true
}

// range marks part n of file rel as in its partial file.
func (j *treeJournal) rangeDone(rel string, n int32) {
	j.edit(rel, func(f *fileState) {
		if f.Ranges == nil {
			f.Ranges = map[int32]bool{}
		}
		f.Ranges[n] = true
	})
}

// drop forgets a file (it is in place, or starts over).
func (j *treeJournal) drop(rel string) {
	j.mu.Lock()
	delete(j.s.Files, rel)
	j.dirty = true
	j.mu.Unlock()
}

func (j *treeJournal) key(rel string) string { return j.s.Prefix + rel }

// close stops the saver and writes what is left.
func (j *treeJournal) close() error {
	close(j.stop)
	j.wg.Wait()
	return j.save()
}

// remove stops the saver and deletes the journal (the copy is done).
func (j *treeJournal) remove() {
	close(j.stop)
	j.wg.Wait()
	if j.path != "" {
		os.Remove(j.path)
	}
}
