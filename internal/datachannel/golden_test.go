package datachannel

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/ssmmsg"
)

type captured struct {
	Direction string `json:"direction"`
	Kind      string `json:"kind"`
	Hex       string `json:"hex"`
}

// frames returns the binary frames of a capture of the official plugin, decoded, by direction.
func frames(t *testing.T, file string) (fromService, fromPlugin []*ssmmsg.Message) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var c captured
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil || c.Kind != "binary" {
			continue
		}
		b, err := hex.DecodeString(c.Hex)
		if err != nil {
			t.Fatal(err)
		}
		m, err := ssmmsg.Decode(b)
		if err != nil {
			continue // the captures include deliberately broken frames
		}
		switch c.Direction {
		case "service->plugin":
			fromService = append(fromService, m)
		case "plugin->service":
			fromPlugin = append(fromPlugin, m)
		}
	}
	return fromService, fromPlugin
}

func find(ms []*ssmmsg.Message, pred func(*ssmmsg.Message) bool) *ssmmsg.Message {
	for _, m := range ms {
		if pred(m) {
			return m
		}
	}
	return nil
}

// TestHandshakeMatchesOfficialPlugin replays the service's HandshakeRequest
// and HandshakeComplete from captures of the official plugin 1.3.0.0 and
// 1.2.677.0, and checks that devgate answers with the same bytes the plugin
// sent: the ack of each (payload byte for byte, seq 0, Flags 3, PayloadType 0)
// and the HandshakeResponse (payload byte for byte apart from ClientVersion).
func TestHandshakeMatchesOfficialPlugin(t *testing.T) {
	for _, c := range []struct{ file, version string }{
		{"testdata/mux-1.3.0.0.jsonl", "1.3.0.0"},
		{"testdata/ssh-1.2.677.0.jsonl", "1.2.677.0"},
	} {
		t.Run(c.file, func(t *testing.T) {
			svc, plug := frames(t, c.file)
			isOut := func(pt ssmmsg.PayloadType) func(*ssmmsg.Message) bool {
				return func(m *ssmmsg.Message) bool { return m.Type == ssmmsg.OutputStreamData && m.PayloadType == pt }
			}
			req, done := find(svc, isOut(ssmmsg.PayloadHandshakeRequest)), find(svc, isOut(ssmmsg.PayloadHandshakeComplete))
			ackOf := func(seq int64) *ssmmsg.Message {
				return find(plug, func(m *ssmmsg.Message) bool {
					a, err := ssmmsg.ParseAck(m)
					return err == nil && a.AcknowledgedMessageType == ssmmsg.OutputStreamData && a.AcknowledgedMessageSequenceNumber == seq
				})
			}
			resp := find(plug, func(m *ssmmsg.Message) bool { return m.PayloadType == ssmmsg.PayloadHandshakeResponse })
			if req == nil || done == nil || resp == nil || ackOf(req.SequenceNumber) == nil || ackOf(done.SequenceNumber) == nil {
				t.Fatal("capture lacks the handshake frames")
			}

			s := newSession(Config{SessionID: "s", ClientVersion: c.version, MaxPayload: 1024, ReadBuffer: 1 << 20})
			defer s.shutdown()
			var mu sync.Mutex
			var sent []*ssmmsg.Message
			s.ep.Attach(func(b []byte) error {
				m, err := ssmmsg.Decode(b)
				if err != nil {
					t.Errorf("devgate sent an undecodable frame: %v", err)
					return nil
				}
				mu.Lock()
				sent = append(sent, m)
				mu.Unlock()
				return nil
			})
			errc := make(chan error, 1)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			go func() { errc <- s.handshake(ctx) }()
			reqFrame, _ := req.Encode()
			s.handleFrame(new(ssmmsg.Message), reqFrame)
			deadline := time.Now().Add(5 * time.Second)
			for {
				mu.Lock()
				n := len(sent)
				mu.Unlock()
				if n >= 2 || time.Now().After(deadline) {
					break
				}
				time.Sleep(time.Millisecond)
			}
			doneFrame, _ := done.Encode()
			s.handleFrame(new(ssmmsg.Message), doneFrame)
			if err := <-errc; err != nil {
				t.Fatalf("handshake: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			ours := func(pred func(*ssmmsg.Message) bool) *ssmmsg.Message { return find(sent, pred) }
			for _, in := range []*ssmmsg.Message{req, done} {
				want := ackOf(in.SequenceNumber)
				got := ours(func(m *ssmmsg.Message) bool {
					a, err := ssmmsg.ParseAck(m)
					return err == nil && a.AcknowledgedMessageSequenceNumber == in.SequenceNumber
				})
				if got == nil {
					t.Fatalf("no ack for seq %d", in.SequenceNumber)
				}
				if !bytes.Equal(got.Payload, want.Payload) || got.Flags != want.Flags || got.SequenceNumber != want.SequenceNumber ||
					got.PayloadType != want.PayloadType || got.SchemaVersion != want.SchemaVersion {
					t.Errorf("ack of seq %d differs from the plugin's:\n ours   %+v %s\n plugin %+v %s", in.SequenceNumber,
						hdr(got), got.Payload, hdr(want), want.Payload)
				}
			}
			got := ours(func(m *ssmmsg.Message) bool { return m.PayloadType == ssmmsg.PayloadHandshakeResponse })
			if got == nil || !bytes.Equal(got.Payload, resp.Payload) || got.SequenceNumber != resp.SequenceNumber ||
				got.Flags != resp.Flags || got.Type != resp.Type {
				t.Fatalf("HandshakeResponse differs from the plugin's:\n ours   %+v %s\n plugin %+v %s", hdr(got), payload(got), hdr(resp), resp.Payload)
			}
		})
	}
}

func hdr(m *ssmmsg.Message) string {
	if m == nil {
		return "<nil>"
	}
	return m.Type + " seq " + itoa(m.SequenceNumber) + " flags " + itoa(int64(m.Flags)) + " pt " + m.PayloadType.String()
}

func payload(m *ssmmsg.Message) []byte {
	if m == nil {
		return nil
	}
	return m.Payload
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestOpenFrameMatchesOfficialPlugin: devgate's OpenDataChannelInput, given
// the plugin's values, is the plugin's text frame byte for byte (key order
// included).
func TestOpenFrameMatchesOfficialPlugin(t *testing.T) {
	f, err := os.Open("testdata/mux-1.3.0.0.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var text string
	for sc.Scan() {
		var c struct{ Direction, Kind, Text string }
		if json.Unmarshal(sc.Bytes(), &c) == nil && c.Kind == "text" && c.Direction == "plugin->service" {
			text = c.Text
			break
		}
	}
	var in ssmmsg.OpenDataChannelInput
	if err := json.Unmarshal([]byte(text), &in); err != nil || in.ClientVersion != "1.3.0.0" {
		t.Fatalf("capture's open frame %q: %v", text, err)
	}
	ours, err := json.Marshal(ssmmsg.OpenDataChannelInput{MessageSchemaVersion: "1.0", RequestId: in.RequestId,
		TokenValue: in.TokenValue, ClientId: in.ClientId, ClientVersion: DefaultClientVersion})
	if err != nil || string(ours) != text {
		t.Fatalf("ours   %s\nplugin %s", ours, text)
	}
}
