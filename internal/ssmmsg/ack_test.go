package ssmmsg

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
)

// jsonAck is what the acknowledge payload was before AppendAckPayload: encoding/json.
func jsonAck(t testing.TB, m *Message) []byte {
	b, err := json.Marshal(AcknowledgeContent{AcknowledgedMessageType: m.Type, AcknowledgedMessageId: m.MessageID.String(),
		AcknowledgedMessageSequenceNumber: m.SequenceNumber, IsSequentialMessage: true})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAppendAckPayloadEqualsEncodingJSON(t *testing.T) {
	for _, m := range []Message{
		{Type: OutputStreamData, SequenceNumber: 0},
		{Type: InputStreamData, SequenceNumber: 1, MessageID: UUID{0xde, 0xad, 0xbe, 0xef, 15: 0xff}},
		{Type: OutputStreamData, SequenceNumber: math.MaxInt64},
		{Type: OutputStreamData, SequenceNumber: -1},
		{Type: "odd <type> & \"quoted\" \\ \x01 é", SequenceNumber: 7}, // the encoding/json fallback
	} {
		got := AppendAckPayload([]byte("prefix"), &m)
		if want := append([]byte("prefix"), jsonAck(t, &m)...); !bytes.Equal(got, want) {
			t.Errorf("AppendAckPayload(%q, %d)\n got %s\nwant %s", m.Type, m.SequenceNumber, got, want)
		}
	}
}

func TestAppendAckEqualsNewAckEncoded(t *testing.T) {
	m := &Message{Type: OutputStreamData, SequenceNumber: 42, MessageID: UUID{1, 2, 3}}
	a, err := NewAck(m, 1700000000000, UUID{9, 8, 7})
	if err != nil {
		t.Fatal(err)
	}
	want, err := a.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got := AppendAck(nil, m, 1700000000000, UUID{9, 8, 7})
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendAck differs from NewAck(...).Encode()")
	}
	d, err := Decode(got)
	if err != nil {
		t.Fatal(err)
	}
	ac, err := ParseAck(d)
	if err != nil || ac.AcknowledgedMessageSequenceNumber != 42 || ac.AcknowledgedMessageType != OutputStreamData ||
		ac.AcknowledgedMessageId != m.MessageID.String() || !ac.IsSequentialMessage {
		t.Fatalf("ParseAck(AppendAck) = %+v, %v", ac, err)
	}
}

func FuzzAppendAckPayload(f *testing.F) {
	f.Add(OutputStreamData, int64(0), []byte{1, 2, 3})
	f.Add("a\"b<>&\\", int64(-5), []byte{})
	f.Fuzz(func(t *testing.T, typ string, seq int64, id []byte) {
		m := &Message{Type: typ, SequenceNumber: seq}
		copy(m.MessageID[:], id)
		if got, want := AppendAckPayload(nil, m), jsonAck(t, m); !bytes.Equal(got, want) {
			t.Fatalf("AppendAckPayload(%q, %d)\n got %s\nwant %s", typ, seq, got, want)
		}
	})
}

func BenchmarkAck(b *testing.B) {
	m := &Message{Type: OutputStreamData, SequenceNumber: 123456, MessageID: UUID{1, 2, 3}}
	b.Run("NewAck+Encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			a, _ := NewAck(m, 1700000000000, UUID{4})
			_, _ = a.Encode()
		}
	})
	b.Run("AppendAck", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 512)
		for b.Loop() {
			buf = AppendAck(buf[:0], m, 1700000000000, UUID{4})
		}
	})
}
