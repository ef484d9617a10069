package transfer

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestJournalRoundTripAndTornLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "j")
	h := journalHeader{V: 1, Src: "/a", Size: 10<<20 + 100, MtimeNs: 5, Chunk: 1 << 20, Partial: "/b.devgate-part"}
	j, err := createJournal(p, h)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int64{0, 3, 9} {
		j.done(i)
	}
	j.part(4, 4096)  // a move of chunk 4 cut short after 4 KiB
	j.part(5, 4096)  // chunk 5 too, then finished
	j.done(5)        //
	j.part(3, 65536) // chunk 3 fetched again after a bad check, cut short: no longer done
	j.part(4, 8192)  // chunk 4 cut short again, further on
	j.part(6, 1<<20) // a whole chunk is not a part: ignored
	j.part(7, 0)     // nothing: ignored
	j.part(10, 100)  // the last chunk is 100 bytes: 100 is not a part of it
	j.part(10, 99)   // 99 is
	j.close()
	// A kill in the middle of a line, and garbage, are ignored.
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("chunk 99\nchunk x\npart 1 x\npart 99 5\npart 2\nchu")
	f.Close()
	done, part, ok := loadJournal(p, h)
	if !ok || !reflect.DeepEqual(done, map[int64]bool{0: true, 5: true, 9: true}) ||
		!reflect.DeepEqual(part, map[int64]int64{3: 65536, 4: 8192, 10: 99}) {
		t.Fatalf("loadJournal = %v %v %v", done, part, ok)
	}
	h2 := h
	h2.MtimeNs = 6 // the source changed since
	if _, _, ok := loadJournal(p, h2); ok {
		t.Fatal("journal of another version of the source accepted")
	}
	if _, _, ok := loadJournal(filepath.Join(t.TempDir(), "none"), h); ok {
		t.Fatal("missing journal accepted")
	}
}
