package datachannel

import (
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/reliable"
	"github.com/devgate/devgate/internal/ssmmsg"
)

func frame(seq int64, typ string, pt ssmmsg.PayloadType, payload []byte) []byte {
	m := ssmmsg.Message{Type: typ, SchemaVersion: 1, CreatedDate: uint64(time.Now().UnixMilli()), SequenceNumber: seq,
		MessageID: reliable.NewID(), PayloadType: pt, Payload: payload}
	b, _ := m.Encode()
	return b
}

// FuzzIncoming feeds arbitrary frames from "the service" to a client session
// (after a valid handshake and some data) and checks that it never panics,
// never delivers a frame that fails to decode, and keeps delivering in order.
func FuzzIncoming(f *testing.F) {
	hs, _ := json.Marshal(ssmmsg.HandshakeRequest{AgentVersion: "3.3.1142.0"})
	f.Add(frame(2, ssmmsg.OutputStreamData, ssmmsg.PayloadOutput, []byte("b")))
	f.Add(frame(5, ssmmsg.OutputStreamData, ssmmsg.PayloadOutput, []byte("early")))
	f.Add(frame(1, ssmmsg.OutputStreamData, ssmmsg.PayloadFlag, []byte{0, 0, 0, 3}))
	f.Add(frame(0, ssmmsg.ChannelClosed, 0, []byte(`{"Output":"bye","CreatedDate":12}`)))
	f.Add(frame(0, ssmmsg.PausePublication, 0, nil))
	f.Add(frame(0, ssmmsg.Acknowledge, 0, []byte(`{"AcknowledgedMessageSequenceNumber":0}`)))
	f.Add(frame(0, ssmmsg.OutputStreamData, ssmmsg.PayloadHandshakeRequest, []byte("{")))
	f.Add(make([]byte, 119))
	// Shell-session payloads: StdErr, ExitCode, an encryption challenge without a KMS handshake.
	f.Add(frame(2, ssmmsg.OutputStreamData, ssmmsg.PayloadStdErr, []byte("oops")))
	f.Add(frame(2, ssmmsg.OutputStreamData, ssmmsg.PayloadExitCode, []byte("EXIT_CODE: 3")))
	f.Add(frame(2, ssmmsg.OutputStreamData, ssmmsg.PayloadEncChallengeRequest, []byte(`{"Challenge":"AAAA"}`)))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newSession(Config{SessionID: "s", MaxPayload: 1024, ReadBuffer: 1 << 20, Logger: slog.New(slog.DiscardHandler),
			OnPayload: func(ssmmsg.PayloadType, []byte) {}})
		defer s.shutdown()
		s.handleFrame(new(ssmmsg.Message), frame(0, ssmmsg.OutputStreamData, ssmmsg.PayloadHandshakeRequest, hs))
		s.handleFrame(new(ssmmsg.Message), frame(1, ssmmsg.OutputStreamData, ssmmsg.PayloadOutput, []byte("a")))
		if _, err := ssmmsg.Decode(data); err != nil {
			before := s.ep.Expected()
			s.handleFrame(new(ssmmsg.Message), data)
			if s.ep.Expected() != before {
				t.Fatalf("a frame that does not decode moved the sequence (%v)", err)
			}
		} else {
			s.handleFrame(new(ssmmsg.Message), data)
		}
		if s.Err() != nil { // channel_closed
			return
		}
		s.handleFrame(new(ssmmsg.Message), frame(s.ep.Expected(), ssmmsg.OutputStreamData, ssmmsg.PayloadOutput, []byte("z")))
		s.finish(&ClosedError{})
		got, _ := io.ReadAll(s)
		if len(got) < 2 || got[0] != 'a' || got[len(got)-1] != 'z' {
			t.Fatalf("delivered %q, want a…z in order", got)
		}
	})
}
