package transfer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadJournal: any bytes after a valid header (a journal cut short by a
// kill, a disk error, another tool's edit) load without a panic, and what
// loads stays inside the file: chunks in range, each either finished or in
// part, a part strictly inside its chunk. The rerun trusts these to skip bytes.
func FuzzLoadJournal(f *testing.F) {
	for _, seed := range []string{
		"chunk 0\nchunk 2\n",
		"part 1 4096\nchunk 1\n",
		"chunk 3\npart 3 10\n",
		"part 0 0\npart 0 99999999\npart -1 5\nchunk 999\n",
		"chunk 1\npart 2 1",
		"part 2\nchunk\n\x00\xff",
	} {
		f.Add([]byte(seed))
	}
	h := journalHeader{V: 1, Src: "/src", Size: 4*1000 + 17, MtimeNs: 1, Chunk: 1000, Partial: "/dst.partial"}
	head, _ := json.Marshal(h)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, body []byte) {
		p := filepath.Join(dir, "j")
		if err := os.WriteFile(p, append(append(head, '\n'), body...), 0o600); err != nil {
			t.Fatal(err)
		}
		done, part, ok := loadJournal(p, h)
		if !ok {
			t.Fatal("a valid header did not load")
		}
		n := (h.Size + h.Chunk - 1) / h.Chunk
		for i := range done {
			if i < 0 || i >= n {
				t.Fatalf("finished chunk %d of %d", i, n)
			}
			if _, both := part[i]; both {
				t.Fatalf("chunk %d both finished and in part", i)
			}
		}
		for i, k := range part {
			if i < 0 || i >= n || k <= 0 || k >= min(h.Chunk, h.Size-i*h.Chunk) {
				t.Fatalf("part %d %d out of the chunk", i, k)
			}
		}
	})
}
