package sshconn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func TestSFTPLimitsPacket(t *testing.T) {
	for _, c := range []struct {
		l    SFTPLimits
		want int
	}{
		{SFTPLimits{}, DefaultPacket}, // nothing stated
		{SFTPLimits{PacketLength: 256 << 10, ReadLength: 0, WriteLength: 1}, DefaultPacket},             // read unstated
		{SFTPLimits{PacketLength: 256 << 10, ReadLength: 255 << 10, WriteLength: 255 << 10}, 255 << 10}, // OpenSSH 9
		{SFTPLimits{PacketLength: 1 << 20, ReadLength: 1 << 20, WriteLength: 1 << 20}, MaxPacket},
		{SFTPLimits{PacketLength: 100 << 10, ReadLength: 1 << 20, WriteLength: 1 << 20}, 99 << 10}, // room for the request's fields
		{SFTPLimits{PacketLength: 256 << 10, ReadLength: 64 << 10, WriteLength: 128 << 10}, 64 << 10},
		{SFTPLimits{PacketLength: 256 << 10, ReadLength: 8 << 10, WriteLength: 128 << 10}, 8 << 10}, // below 32 KiB: the server's word
		{SFTPLimits{PacketLength: 512, ReadLength: 1 << 20, WriteLength: 1 << 20}, 512},
	} {
		if got := c.l.Packet(); got != c.want {
			t.Errorf("%+v.Packet() = %d, want %d", c.l, got, c.want)
		}
	}
}

// version builds a VERSION body with the given extension pairs.
func version(pairs ...string) []byte {
	b := binary.BigEndian.AppendUint32(nil, 3)
	for _, p := range pairs {
		b = appendString(b, p)
	}
	return b
}

func limitsReply(id uint32, vals ...uint64) []byte {
	b := binary.BigEndian.AppendUint32(nil, id)
	for _, v := range vals {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	return b
}

func packet(typ byte, body []byte) []byte {
	var b bytes.Buffer
	writePacket(&b, typ, body)
	return b.Bytes()
}

// TestExchangeLimits runs the exchange against canned server answers: what
// the client sends, the limits decoded, and each way a server can say no or
// answer garbage (an error, never a panic or a guess).
func TestExchangeLimits(t *testing.T) {
	ok := append(packet(fxpVersion, version("posix-rename@openssh.com", "1", limitsExt, "1")),
		packet(fxpExtendedReply, limitsReply(1, 262144, 261120, 261120, 1024))...)
	var sent bytes.Buffer
	l, err := exchangeLimits(bytes.NewReader(ok), &sent)
	if err != nil || l != (SFTPLimits{262144, 261120, 261120, 1024}) || l.Packet() != 261120 {
		t.Fatalf("limits %+v, %v", l, err)
	}
	wantSent := append(packet(fxpInit, []byte{0, 0, 0, 3}), packet(fxpExtended, appendString([]byte{0, 0, 0, 1}, limitsExt))...)
	if !bytes.Equal(sent.Bytes(), wantSent) {
		t.Fatalf("sent %x, want %x", sent.Bytes(), wantSent)
	}

	for name, in := range map[string][]byte{
		"no extension": packet(fxpVersion, version("posix-rename@openssh.com", "1")),
		"refused":      append(packet(fxpVersion, version(limitsExt, "1")), packet(fxpStatus, limitsReply(1, 8<<32))...),
	} {
		if _, err := exchangeLimits(bytes.NewReader(in), &bytes.Buffer{}); !errors.Is(err, ErrNoLimits) {
			t.Errorf("%s: %v, want ErrNoLimits", name, err)
		}
	}
	for name, in := range map[string][]byte{
		"empty":            nil,
		"not VERSION":      packet(fxpStatus, limitsReply(0, 0)),
		"short VERSION":    packet(fxpVersion, []byte{0, 0}),
		"cut extension":    packet(fxpVersion, append(version(limitsExt), 0, 0, 0, 9, 'x')),
		"huge length":      {0xff, 0xff, 0xff, 0xff, fxpVersion},
		"zero length":      {0, 0, 0, 0},
		"no reply":         packet(fxpVersion, version(limitsExt, "1")),
		"wrong id":         append(packet(fxpVersion, version(limitsExt, "1")), packet(fxpExtendedReply, limitsReply(2, 1, 2, 3, 4))...),
		"short reply":      append(packet(fxpVersion, version(limitsExt, "1")), packet(fxpExtendedReply, limitsReply(1, 1, 2, 3))...),
		"wrong reply type": append(packet(fxpVersion, version(limitsExt, "1")), packet(fxpVersion, limitsReply(1, 1, 2, 3, 4))...),
	} {
		if l, err := exchangeLimits(bytes.NewReader(in), &bytes.Buffer{}); err == nil || errors.Is(err, ErrNoLimits) {
			t.Errorf("%s: %+v, %v; want a decoding error", name, l, err)
		}
	}
}

// FuzzExchangeLimits: any server answer decodes to limits or an error, and
// the packet length derived from it stays within [1, MaxPacket].
func FuzzExchangeLimits(f *testing.F) {
	f.Add(append(packet(fxpVersion, version(limitsExt, "1")), packet(fxpExtendedReply, limitsReply(1, 262144, 261120, 261120, 1024))...))
	f.Add(packet(fxpVersion, version("a", "b")))
	f.Add(append(packet(fxpVersion, version(limitsExt, "1")), packet(fxpStatus, limitsReply(1, 8))...))
	f.Fuzz(func(t *testing.T, in []byte) {
		l, err := exchangeLimits(bytes.NewReader(in), &bytes.Buffer{})
		if err != nil && l != (SFTPLimits{}) {
			t.Fatalf("limits %+v with error %v", l, err)
		}
		if p := l.Packet(); p < 1 || p > MaxPacket {
			t.Fatalf("Packet() = %d for %+v", p, l)
		}
	})
}

// TestSkipInit: the first packet written, an INIT however the writes cut
// it, is dropped and everything after it passes on unchanged; a first
// packet that is not an INIT is refused.
func TestSkipInit(t *testing.T) {
	init := packet(fxpInit, []byte{0, 0, 0, 3})
	next := packet(fxpExtended, appendString([]byte{0, 0, 0, 7}, "x"))
	all := append(append([]byte{}, init...), next...)
	for cut := range len(all) + 1 {
		for cut2 := cut; cut2 <= len(all); cut2 += 3 {
			var out bytes.Buffer
			w := &skipInit{w: nopCloser{&out}}
			for _, p := range [][]byte{all[:cut], all[cut:cut2], all[cut2:]} {
				if n, err := w.Write(p); n != len(p) || err != nil {
					t.Fatalf("cuts %d,%d: write of %d: %d, %v", cut, cut2, len(p), n, err)
				}
			}
			if !bytes.Equal(out.Bytes(), next) {
				t.Fatalf("cuts %d,%d: passed %x, want %x", cut, cut2, out.Bytes(), next)
			}
		}
	}
	w := &skipInit{w: nopCloser{&bytes.Buffer{}}}
	if _, err := w.Write(next); err == nil {
		t.Fatal("a first packet that is not INIT was taken")
	}
}

// TestInitLimitsVersion: the VERSION packet comes back as it was read,
// with the limits and when the server has none.
func TestInitLimitsVersion(t *testing.T) {
	ver := packet(fxpVersion, version(limitsExt, "1"))
	ver, l, err := initLimits(bytes.NewReader(append(ver, packet(fxpExtendedReply, limitsReply(1, 262144, 261120, 261120, 1024))...)), &bytes.Buffer{})
	if err != nil || l.Packet() != 261120 || !bytes.Equal(ver, packet(fxpVersion, version(limitsExt, "1"))) {
		t.Fatalf("%x %+v %v", ver, l, err)
	}
	plain := packet(fxpVersion, version("posix-rename@openssh.com", "1"))
	ver, _, err = initLimits(bytes.NewReader(plain), &bytes.Buffer{})
	if !errors.Is(err, ErrNoLimits) || !bytes.Equal(ver, plain) {
		t.Fatalf("%x %v", ver, err)
	}
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
