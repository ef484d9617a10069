package sftpfault

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

func packet(typ byte, fields ...any) []byte {
	var body bytes.Buffer
	body.WriteByte(typ)
	for _, f := range fields {
		switch v := f.(type) {
		case uint32:
			binary.Write(&body, binary.BigEndian, v)
		case uint64:
			binary.Write(&body, binary.BigEndian, v)
		case string:
			binary.Write(&body, binary.BigEndian, uint32(len(v)))
			body.WriteString(v)
		case []byte:
			binary.Write(&body, binary.BigEndian, uint32(len(v)))
			body.Write(v)
		}
	}
	out := binary.BigEndian.AppendUint32(nil, uint32(body.Len()))
	return append(out, body.Bytes()...)
}

// TestRelayFlipsOnce: the byte at the offset of a matching file is flipped
// in read data and in written data, once each per fault; other files and
// other offsets pass unchanged.
func TestRelayFlipsOnce(t *testing.T) {
	r := &Relay{Specs: []Spec{{"/src.bin", 100}, {"/dst.part", 5}}, OnceDir: t.TempDir()}
	var c2s, s2c bytes.Buffer
	data := bytes.Repeat([]byte{0x11}, 64)
	// In protocol order: opens, their handles, reads and a write, the data.
	opens := bytes.Join([][]byte{
		packet(fxpOpen, uint32(1), "/x/src.bin", uint32(1), uint32(0)),
		packet(fxpOpen, uint32(2), "/x/dst.part", uint32(2), uint32(0)),
	}, nil)
	if err := r.ClientToServer(bytes.NewReader(opens), &c2s); err != nil {
		t.Fatal(err)
	}
	server := bytes.Join([][]byte{packet(fxpHandle, uint32(1), "H1"), packet(fxpHandle, uint32(2), "H2")}, nil)
	if err := r.ServerToClient(bytes.NewReader(server), &s2c); err != nil {
		t.Fatal(err)
	}
	client := bytes.Join([][]byte{
		packet(fxpRead, uint32(3), "H1", uint64(64), uint32(64)), // 64..127: holds 100
		packet(fxpRead, uint32(4), "H1", uint64(64), uint32(64)), // again: already done
		packet(fxpWrite, uint32(5), "H2", uint64(0), data),       // 0..63: holds 5
	}, nil)
	if err := r.ClientToServer(bytes.NewReader(client), &c2s); err != nil {
		t.Fatal(err)
	}
	replies := bytes.Join([][]byte{packet(fxpData, uint32(3), data), packet(fxpData, uint32(4), data)}, nil)
	s2c.Reset()
	if err := r.ServerToClient(bytes.NewReader(replies), &s2c); err != nil {
		t.Fatal(err)
	}
	first := append([]byte(nil), data...)
	first[100-64] ^= 0xff
	want := bytes.Join([][]byte{packet(fxpData, uint32(3), first), packet(fxpData, uint32(4), data)}, nil)
	if !bytes.Equal(s2c.Bytes(), want) {
		t.Fatal("read data: want byte 100 flipped in the first reply only")
	}
	written := append([]byte(nil), data...)
	written[5] ^= 0xff
	if !bytes.Contains(c2s.Bytes(), packet(fxpWrite, uint32(5), "H2", uint64(0), written)[4:]) {
		t.Fatal("written data: want byte 5 flipped")
	}
	for _, f := range []string{"0.done", "1.done"} {
		if _, err := os.Stat(filepath.Join(r.OnceDir, f)); err != nil {
			t.Fatalf("marker %s: %v", f, err)
		}
	}
	if _, err := ParseSpecs("a:1,b:x"); err == nil {
		t.Fatal("bad spec accepted")
	}
}

// FuzzRelay: whatever the bytes, the relay does not panic, and with no
// matching fault it passes every complete packet through unchanged.
func FuzzRelay(f *testing.F) {
	f.Add(packet(fxpOpen, uint32(1), "/a", uint32(1), uint32(0)))
	f.Add(packet(fxpRead, uint32(3), "H", uint64(1), uint32(2)))
	f.Add(packet(fxpData, uint32(3), "xyz"))
	f.Add([]byte{0, 0, 0, 1, 5})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := &Relay{Specs: []Spec{{"/never-matches", 0}}, OnceDir: t.TempDir()}
		var out bytes.Buffer
		err := r.ClientToServer(bytes.NewReader(b), &out)
		if err == nil && !bytes.Equal(out.Bytes(), b) {
			t.Fatalf("relay changed the stream: %x → %x", b, out.Bytes())
		}
		out.Reset()
		err = r.ServerToClient(bytes.NewReader(b), &out)
		if err == nil && !bytes.Equal(out.Bytes(), b) {
			t.Fatalf("relay changed the stream: %x → %x", b, out.Bytes())
		}
	})
}
