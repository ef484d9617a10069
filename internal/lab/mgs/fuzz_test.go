package mgs

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/reliable"
	"github.com/devgate/devgate/internal/ssmmsg"
)

// FuzzFrameHandler feeds arbitrary frames to a session's frame handler, after
// a valid HandshakeResponse and data frame, and checks it never panics: bad
// input ends the session with an error instead.
func FuzzFrameHandler(f *testing.F) {
	mk := func(seq int64, pt ssmmsg.PayloadType, payload []byte) []byte {
		m := ssmmsg.Message{Type: ssmmsg.InputStreamData, SchemaVersion: 1, CreatedDate: uint64(time.Now().UnixMilli()),
			SequenceNumber: seq, MessageID: reliable.NewID(), PayloadType: pt, Payload: payload}
		b, _ := m.Encode()
		return b
	}
	resp, _ := json.Marshal(ssmmsg.HandshakeResponse{ClientVersion: "1.3.0.0", ProcessedClientActions: []ssmmsg.ProcessedClientAction{{ActionType: "SessionType", ActionStatus: 1}}})
	f.Add(mk(0, ssmmsg.PayloadHandshakeResponse, resp))
	f.Add(mk(1, ssmmsg.PayloadOutput, []byte("SSH-2.0-x\r\n")))
	f.Add(mk(2, ssmmsg.PayloadFlag, ssmmsg.FlagPayload(ssmmsg.FlagTerminateSession)))
	f.Add(mk(3, ssmmsg.PayloadFlag, []byte{1}))
	f.Add(mk(0, ssmmsg.PayloadHandshakeResponse, []byte("{")))
	ack, _ := ssmmsg.NewAck(&ssmmsg.Message{Type: ssmmsg.OutputStreamData}, 1, reliable.NewID())
	ab, _ := ack.Encode()
	f.Add(ab)
	f.Add(make([]byte, 119))
	// Shell-session payloads the agent decodes: Size and EncChallengeResponse.
	f.Add(mk(1, ssmmsg.PayloadSize, []byte(`{"cols":80,"rows":24}`)))
	f.Add(mk(1, ssmmsg.PayloadSize, []byte(`{"cols":0,"rows":99999999}`)))
	f.Add(mk(1, ssmmsg.PayloadEncChallengeResponse, []byte(`{"Challenge":"AAAA"}`)))
	f.Fuzz(func(t *testing.T, data []byte) {
		srv := New(Config{})
		if _, err := srv.Create(SessionSpec{SessionID: "s-f", Target: "i-f", Properties: map[string]string{"portNumber": "22"}}); err != nil {
			t.Fatal(err)
		}
		s := srv.get("s-f")
		_ = s.handleFrame(mk(0, ssmmsg.PayloadHandshakeResponse, resp))
		_ = s.handleFrame(data)
		_ = s.handleFrame(mk(1, ssmmsg.PayloadOutput, []byte("x")))
		srv.Close()
	})
}
