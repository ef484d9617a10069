package transfer

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
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

// A journal resumes the same copy: an mtime known to the second only (the
// sub-second lookup failed or was cut short) matches any in its second, a
// relative partial path of an older devgate matches its absolute path here;
// another second, another sub-second mtime, another file, size, chunk or
// source do not.
func TestJournalHeaderResumes(t *testing.T) {
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	const s = int64(time.Second)
	want := journalHeader{V: 1, Src: "/data/m.bin", Size: 100, MtimeNs: 1741064767*s + 123456789, Chunk: 10,
		Partial: filepath.Join(cwd, "d.devgate-part")}
	for _, c := range []struct {
		name string
		mod  func(h *journalHeader)
		ok   bool
	}{
		{"identical", func(h *journalHeader) {}, true},
		{"whole second in the journal", func(h *journalHeader) { h.MtimeNs = 1741064767 * s }, true},
		{"relative partial (older devgate, same directory)", func(h *journalHeader) { h.Partial = "./d.devgate-part" }, true},
		{"relative partial without ./", func(h *journalHeader) { h.Partial = "d.devgate-part" }, true},
		{"another sub-second mtime", func(h *journalHeader) { h.MtimeNs = 1741064767*s + 5 }, false},
		{"another second", func(h *journalHeader) { h.MtimeNs = 1741064768 * s }, false},
		{"another partial", func(h *journalHeader) { h.Partial = "other.devgate-part" }, false},
		{"another absolute partial", func(h *journalHeader) { h.Partial = "/elsewhere/d.devgate-part" }, false},
		{"another size", func(h *journalHeader) { h.Size = 101 }, false},
		{"another chunk", func(h *journalHeader) { h.Chunk = 20 }, false},
		{"another source", func(h *journalHeader) { h.Src = "/data/n.bin" }, false},
	} {
		h := want
		c.mod(&h)
		if got := h.resumes(want); got != c.ok {
			t.Errorf("%s: resumes = %v, want %v", c.name, got, c.ok)
		}
	}
	// This run knows the second only, the journal the nanoseconds.
	w2 := want
	w2.MtimeNs = 1741064767 * s
	if !want.resumes(w2) {
		t.Error("a journal with sub-second mtime is not resumed by a run that knows the second only")
	}
}
