package ssmmsg

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// goldenHex is the frame of docs/ssm-session-protocol.md §3.
const goldenHex = `
00 00 00 74 69 6e 70 75 74 5f 73 74 72 65 61 6d
5f 64 61 74 61 20 20 20 20 20 20 20 20 20 20 20
20 20 20 20 00 00 00 01 00 00 01 5e 0b aa 78 84
00 00 00 00 00 00 00 05 00 00 00 00 00 00 00 00
a5 08 b5 f0 73 f3 1b 16 dd 01 e5 6b ff 48 48 3e
8f 43 43 46 64 8f 6b 96 df 89 dd a9 01 c5 17 6b
10 a6 d8 39 61 dd 3c 1a c8 8b 59 b2 dc 32 7a a4
00 00 00 01 00 00 00 02 68 69`

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGoldenVector(t *testing.T) {
	want := mustHex(t, goldenHex)
	id, err := ParseUUID("dd01e56b-ff48-483e-a508-b5f073f31b16")
	if err != nil {
		t.Fatal(err)
	}
	m := &Message{Type: InputStreamData, SchemaVersion: 1, CreatedDate: 1503434274948, SequenceNumber: 5,
		MessageID: id, PayloadType: PayloadOutput, Payload: []byte("hi")}
	got, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encode mismatch:\n got %x\nwant %x", got, want)
	}
	d, err := Decode(want)
	if err != nil {
		t.Fatal(err)
	}
	if d.Type != InputStreamData || d.SequenceNumber != 5 || d.CreatedDate != 1503434274948 ||
		d.MessageID != id || d.PayloadType != PayloadOutput || string(d.Payload) != "hi" || d.Flags != 0 {
		t.Fatalf("decode mismatch: %+v", d)
	}
}

type goldenLine struct {
	Direction string          `json:"direction"`
	Kind      string          `json:"kind"`
	Hex       string          `json:"hex"`
	Summary   json.RawMessage `json:"summary"`
}

type goldenSummary struct {
	HeaderLength   int             `json:"header_length"`
	MessageType    string          `json:"message_type"`
	SchemaVersion  uint32          `json:"schema_version"`
	CreatedDate    uint64          `json:"created_date"`
	SequenceNumber int64           `json:"sequence_number"`
	Flags          uint64          `json:"flags"`
	MessageID      string          `json:"message_id"`
	DigestOK       *bool           `json:"digest_ok"`
	PayloadType    uint32          `json:"payload_type"`
	PayloadLength  int             `json:"payload_length"`
	PayloadJSON    json.RawMessage `json:"payload_json"`
	Flag           *string         `json:"flag"` // "3 ConnectToPortError"
}

// TestCapturedFrames decodes every binary frame captured from the official
// plugin and checks the decoder reproduces the capture's summary.
func TestCapturedFrames(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.jsonl")
	if len(files) == 0 {
		t.Fatal("no captured frames in testdata")
	}
	var frames, badDigest, truncated, hl112, acks int
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var l goldenLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			switch l.Kind {
			case "binary-truncated":
				truncated++
				if _, err := Decode(mustHex(t, l.Hex)); !errors.Is(err, ErrMalformed) {
					t.Errorf("%s: truncated frame decoded without ErrMalformed: %v", f, err)
				}
				continue
			case "binary":
			default:
				continue
			}
			frames++
			raw := mustHex(t, l.Hex)
			var s goldenSummary
			if err := json.Unmarshal(l.Summary, &s); err != nil {
				t.Fatal(err)
			}
			m, err := Decode(raw)
			if s.DigestOK != nil && !*s.DigestOK {
				badDigest++
				if !errors.Is(err, ErrDigest) {
					t.Errorf("%s: bad digest not detected: %v", f, err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: %v (%s)", f, err, l.Summary)
				continue
			}
			if s.HeaderLength == 112 {
				hl112++
			}
			if m.Type != s.MessageType || m.SchemaVersion != s.SchemaVersion || m.CreatedDate != s.CreatedDate ||
				m.SequenceNumber != s.SequenceNumber || m.Flags != s.Flags || m.MessageID.String() != s.MessageID ||
				uint32(m.PayloadType) != s.PayloadType || len(m.Payload) != s.PayloadLength {
				t.Errorf("%s: decoded %+v, summary %s", f, m, l.Summary)
			}
			if s.Flag != nil {
				fl, err := ParseFlag(m.Payload)
				if err != nil || !strings.HasPrefix(*s.Flag, fmt.Sprint(uint32(fl))+" ") {
					t.Errorf("%s: flag %v %v, want %s", f, fl, err, *s.Flag)
				}
			}
			switch m.Type {
			case Acknowledge:
				acks++
				a, err := ParseAck(m)
				if err != nil {
					t.Errorf("%s: ack: %v", f, err)
				}
				if a.AcknowledgedMessageType == "" && !strings.Contains(f, "ack-mangle") {
					t.Errorf("%s: empty ack type", f)
				}
			case ChannelClosed:
				if _, err := ParseChannelClosed(m); err != nil {
					t.Errorf("%s: channel_closed: %v", f, err)
				}
			}
			// Frames written by the plugin (and the capture's fake, HL 116) re-encode byte for byte.
			if s.HeaderLength == HeaderLength {
				again, err := m.Encode()
				if err != nil || !bytes.Equal(again, raw) {
					t.Errorf("%s: re-encode differs: %v\n got %x\nwant %x", f, err, again, raw)
				}
			}
		}
		fh.Close()
	}
	if frames < 100 || badDigest == 0 || truncated == 0 || hl112 == 0 || acks == 0 {
		t.Fatalf("coverage too thin: frames=%d badDigest=%d truncated=%d hl112=%d acks=%d", frames, badDigest, truncated, hl112, acks)
	}
}

func TestPluginHandshakeResponseBytes(t *testing.T) {
	// The plugin's HandshakeResponse for a Port session, byte-exact (§4.2).
	want := `{"ClientVersion":"1.2.677.0","ProcessedClientActions":[{"ActionType":"SessionType","ActionStatus":1,"ActionResult":null,"Error":""}],"Errors":null}`
	got, err := json.Marshal(HandshakeResponse{ClientVersion: "1.2.677.0",
		ProcessedClientActions: []ProcessedClientAction{{ActionType: ActionSessionType, ActionStatus: ActionSuccess}}})
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestAckShape(t *testing.T) {
	id, _ := ParseUUID("dd01e56b-ff48-483e-a508-b5f073f31b16")
	m := &Message{Type: OutputStreamData, CreatedDate: 1, SequenceNumber: 7, MessageID: id, PayloadType: PayloadOutput, Payload: []byte("x")}
	ack, err := NewAck(m, 2, UUID{1})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"AcknowledgedMessageType":"output_stream_data","AcknowledgedMessageId":"dd01e56b-ff48-483e-a508-b5f073f31b16","AcknowledgedMessageSequenceNumber":7,"IsSequentialMessage":true}`
	if string(ack.Payload) != want || ack.SequenceNumber != 0 || ack.Flags != 3 || ack.PayloadType != 0 {
		t.Fatalf("ack %+v payload %s", ack, ack.Payload)
	}
}

func TestDecodeErrors(t *testing.T) {
	good := mustHex(t, goldenHex)
	cases := map[string][]byte{
		"empty":           nil,
		"three bytes":     good[:3],
		"header only":     good[:100],
		"119 bytes":       good[:119], // crashes the official plugin (§9 item 17)
		"bad hl":          append([]byte{0, 0, 0, 0x78}, good[4:]...),
		"hl huge":         append([]byte{0xff, 0xff, 0xff, 0xff}, good[4:]...),
		"length too long": withByte(good, 119, 3),
		"trailing byte":   append(append([]byte{}, good...), 'x'),
		"digest":          withByte(good, 120, 'H'),
		"zero date":       zeroRange(good, 40, 48),
		"empty type":      spaces(good, 4, 36),
	}
	for name, frame := range cases {
		if _, err := Decode(frame); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func withByte(b []byte, i int, v byte) []byte {
	c := append([]byte{}, b...)
	c[i] = v
	return c
}

func zeroRange(b []byte, i, j int) []byte {
	c := append([]byte{}, b...)
	for k := i; k < j; k++ {
		c[k] = 0
	}
	return c
}

func spaces(b []byte, i, j int) []byte {
	c := append([]byte{}, b...)
	for k := i; k < j; k++ {
		c[k] = ' '
	}
	return c
}

func TestRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 1023, 1024, 65536} {
		p := bytes.Repeat([]byte{0xA5}, n)
		m := &Message{Type: OutputStreamData, SchemaVersion: 1, CreatedDate: 1700000000000, SequenceNumber: int64(n),
			Flags: FlagsSYN, MessageID: UUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, PayloadType: PayloadOutput, Payload: p}
		b, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		d, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if d.Type != m.Type || d.SequenceNumber != m.SequenceNumber || d.Flags != m.Flags || d.MessageID != m.MessageID ||
			d.CreatedDate != m.CreatedDate || !bytes.Equal(d.Payload, p) {
			t.Fatalf("round trip %d: %+v", n, d)
		}
	}
}

func TestChannelClosedCreatedDateForms(t *testing.T) {
	for _, body := range []string{`{"CreatedDate":"123","Output":"bye"}`, `{"CreatedDate":123,"Output":"bye"}`} {
		c, err := ParseChannelClosed(&Message{Payload: []byte(body)})
		if err != nil || c.CreatedDate != "123" || c.Output != "bye" {
			t.Fatalf("%s: %+v %v", body, c, err)
		}
	}
}

func TestVersionRules(t *testing.T) {
	// Client side (§6.1): strict 4-part compare.
	for v, mux := range map[string]bool{"3.3.1142.0": true, "3.1.1000.0": true, "3.0.196.0": false, "2.3.700.0": false, "3.3": false, "": false} {
		if got := ClientChoosesMux(v); got != mux {
			t.Errorf("ClientChoosesMux(%q) = %v", v, got)
		}
	}
	for v, ka := range map[string]bool{"3.3.1142.0": false, "3.1.1000.0": true, "3.1.1511.0": true, "3.1.1512.0": false, "3.3": true} {
		if got := ClientSmuxKeepalive(v); got != ka {
			t.Errorf("ClientSmuxKeepalive(%q) = %v", v, got)
		}
	}
	// Agent side: padded compare.
	for v, mux := range map[string]bool{"1.3.0.0": true, "1.1.70": true, "1.1.70.0": true, "1.1.69.9": false, "0.0.1": false, "": false} {
		if got := AgentChoosesMux(v); got != mux {
			t.Errorf("AgentChoosesMux(%q) = %v", v, got)
		}
	}
	for v, ka := range map[string]bool{"1.2.677.0": false, "1.2.331.0": true, "1.0.0.0": true} {
		if got := AgentSmuxKeepalive(v); got != ka {
			t.Errorf("AgentSmuxKeepalive(%q) = %v", v, got)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(mustHex(f, goldenHex))
	files, _ := filepath.Glob("testdata/*.jsonl")
	for _, file := range files[:2] {
		data, _ := os.ReadFile(file)
		for i, line := range bytes.Split(data, []byte("\n")) {
			var l goldenLine
			if i > 40 || json.Unmarshal(line, &l) != nil || l.Hex == "" {
				continue
			}
			if b, err := hex.DecodeString(l.Hex); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		m, err := Decode(frame)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not wrapping ErrMalformed: %v", err)
			}
			return
		}
		// Whatever decodes must survive the body parsers and re-encode to a frame that decodes the same.
		_, _ = ParseAck(m)
		_, _ = ParseChannelClosed(m)
		_, _, _ = ParseHandshakeRequest(m.Payload)
		_, _ = ParseFlag(m.Payload)
		if len(m.Type) > 32 || m.Type == StartPublication || m.Type == PausePublication {
			return
		}
		b, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		m2, err := Decode(b)
		if err != nil {
			t.Fatalf("re-encoded frame does not decode: %v", err)
		}
		if m2.Type != m.Type || m2.SequenceNumber != m.SequenceNumber || !bytes.Equal(m2.Payload, m.Payload) || m2.MessageID != m.MessageID {
			t.Fatalf("re-encode changed the message")
		}
	})
}

func BenchmarkEncodeDecode1KiB(b *testing.B) {
	m := &Message{Type: InputStreamData, CreatedDate: 1700000000000, MessageID: UUID{1}, PayloadType: PayloadOutput,
		Payload: bytes.Repeat([]byte{'x'}, 1024)}
	buf := make([]byte, 0, m.EncodedLen())
	var d Message
	b.ReportAllocs()
	b.SetBytes(1024)
	for i := 0; i < b.N; i++ {
		m.SequenceNumber = int64(i)
		var err error
		buf, err = m.AppendEncode(buf[:0])
		if err != nil {
			b.Fatal(err)
		}
		if err := DecodeInto(&d, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzBodies feeds arbitrary payloads to every JSON/flag body decoder and the
// version comparison: errors, never panics; comparisons are antisymmetric.
func FuzzBodies(f *testing.F) {
	f.Add([]byte(`{"AgentVersion":"3.3.1142.0","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{"SessionType":"Port","Properties":{"portNumber":"22"}}}]}`), "3.3.1142.0", "3.0.196.0")
	f.Add([]byte(`{"Output":"x","CreatedDate":1503434274948}`), "1.2.331.0", "1.1.70")
	f.Add([]byte{0, 0, 0, 3}, "3.3", "3.3.0.0")
	f.Add([]byte(`{"RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":1}]}`), "", "-1.x")
	f.Fuzz(func(t *testing.T, p []byte, a, b string) {
		if _, st, err := ParseHandshakeRequest(p); err == nil && st != nil {
			for k := range st.Properties {
				_ = st.Property(k)
			}
		}
		_, _ = ParseAck(&Message{Type: Acknowledge, Payload: p})
		_, _ = ParseChannelClosed(&Message{Type: ChannelClosed, Payload: p})
		if fl, err := ParseFlag(p); err == nil && !bytes.Equal(FlagPayload(fl), p) {
			t.Fatalf("flag %d does not round-trip %x", fl, p)
		}
		c1, ok1 := CompareVersions(a, b)
		c2, ok2 := CompareVersions(b, a)
		if ok1 != ok2 || (ok1 && c1 != -c2) {
			t.Fatalf("CompareVersions(%q,%q)=%d,%v but reversed %d,%v", a, b, c1, ok1, c2, ok2)
		}
		p1, ok1 := CompareVersionsPadded(a, b)
		p2, ok2 := CompareVersionsPadded(b, a)
		if ok1 != ok2 || (ok1 && p1 != -p2) {
			t.Fatalf("CompareVersionsPadded(%q,%q)=%d,%v but reversed %d,%v", a, b, p1, ok1, p2, ok2)
		}
		_ = AgentChoosesMux(a) || ClientChoosesMux(a) || AgentSmuxKeepalive(a) || ClientSmuxKeepalive(a) || ClientSendsTerminateFlag(a)
	})
}
