package s3relay

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"

	"github.com/devgate/devgate/internal/atomicfile"
)

// state is what a relayed copy has done, kept in a journal here so that the
// same command again (after a kill -9 or a dropped connection) continues: the
// multipart upload (its parts are listed from S3 itself: ListParts) and the
// ranges already in the partial file. The first fields identify the copy; a
// journal whose identity differs (the source changed, another part size or
// bucket) is ignored and the copy starts over.
type state struct {
	V        int    `json:"v"`
	Dir      string `json:"dir"` // "down" (instance → here) or "up"
	Src      string `json:"src"` // <instance id>:<path> on the instance
	Dst      string `json:"dst"`
	Size     int64  `json:"size"`
	MtimeNs  int64  `json:"mtime_ns"`
	PartSize int64  `json:"part_size"`
	Bucket   string `json:"bucket"`

	Key      string         `json:"key"`
	UploadID string         `json:"upload_id,omitempty"`
	Complete bool           `json:"complete,omitempty"` // the object is whole in S3
	Ranges   map[int32]bool `json:"ranges,omitempty"`   // parts (1-based) already in the partial file
}

func (s state) sameCopy(o state) bool {
	return s.V == o.V && s.Dir == o.Dir && s.Src == o.Src && s.Dst == o.Dst && s.Size == o.Size &&
		s.MtimeNs == o.MtimeNs && s.PartSize == o.PartSize && s.Bucket == o.Bucket
}

// journal is the state of one relayed copy and the file it is saved in
// ("" keeps it in memory only).
type journal struct {
	path string
	mu   sync.Mutex
	s    state
}

// openJournal returns the journal of the copy want in dir; resumed is true
// when an earlier run of the same copy left one.
func openJournal(dir string, want state) (j *journal, resumed bool) {
	j = &journal{s: want}
	if dir == "" {
		return j, false
	}
	h := sha256.Sum256([]byte(want.Dir + "\n" + want.Src + "\n" + want.Dst))
	j.path = filepath.Join(dir, "relay-"+hex.EncodeToString(h[:12])+".json")
	b, err := os.ReadFile(j.path)
	if err != nil {
		return j, false
	}
	var got state
	if json.Unmarshal(b, &got) != nil || !got.sameCopy(want) || got.Key == "" {
		return j, false
	}
	j.s = got
	return j, true
}

// update changes the state and saves it (0600, atomically).
func (j *journal) update(f func(s *state)) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	f(&j.s)
	if j.path == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(j.path), 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(j.s)
	if err != nil {
		return err
	}
	return atomicfile.Write(j.path, b, 0o600)
}

func (j *journal) get() state {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := j.s
	s.Ranges = map[int32]bool{}
	for k, v := range j.s.Ranges {
		s.Ranges[k] = v
	}
	return s
}

func (j *journal) remove() {
	if j.path != "" {
		os.Remove(j.path)
	}
}
