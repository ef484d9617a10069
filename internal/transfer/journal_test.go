package transfer

import (
	"os"
	"path/filepath"
	"testing"
)

func TestJournalRoundTripAndTornLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "j")
	h := journalHeader{V: 1, Src: "/a", Size: 10 << 20, MtimeNs: 5, Chunk: 1 << 20, Partial: "/b.devgate-part"}
	j, err := createJournal(p, h)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int64{0, 3, 9} {
		j.done(i)
	}
	j.close()
	// A kill in the middle of a line, and garbage, are ignored.
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("chunk 99\nchunk x\nchu")
	f.Close()
	done, ok := loadJournal(p, h)
	if !ok || len(done) != 3 || !done[0] || !done[3] || !done[9] {
		t.Fatalf("loadJournal = %v %v", done, ok)
	}
	h2 := h
	h2.MtimeNs = 6 // the source changed since
	if _, ok := loadJournal(p, h2); ok {
		t.Fatal("journal of another version of the source accepted")
	}
	if _, ok := loadJournal(filepath.Join(t.TempDir(), "none"), h); ok {
		t.Fatal("missing journal accepted")
	}
}
