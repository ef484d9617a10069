package mgs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labtest"
	"github.com/devgate/devgate/internal/reliable"
	"github.com/devgate/devgate/internal/ssmmsg"
)

// handClient is a client written out by hand so that the two places a
// ClientVersion can travel (OpenDataChannelInput, HandshakeResponse, §2.2 and
// §4.2) can be set independently, as plugins of different ages do.
type handClient struct {
	t      *testing.T
	ws     *websocket.Conn
	ep     *reliable.Endpoint
	output chan []byte
	closed chan string
}

func openHand(t *testing.T, url, token, openVersion, hsVersion string) *handClient {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	h := &handClient{t: t, ws: ws, output: make(chan []byte, 64), closed: make(chan string, 1)}
	out := make(chan []byte, 256)
	h.ep = reliable.New(reliable.Config{SendType: ssmmsg.InputStreamData, Deliver: func(m *ssmmsg.Message) bool {
		switch m.PayloadType {
		case ssmmsg.PayloadHandshakeRequest:
			resp, _ := json.Marshal(ssmmsg.HandshakeResponse{ClientVersion: hsVersion,
				ProcessedClientActions: []ssmmsg.ProcessedClientAction{{ActionType: ssmmsg.ActionSessionType, ActionStatus: ssmmsg.ActionSuccess}}})
			go h.ep.Send(context.Background(), ssmmsg.PayloadHandshakeResponse, resp)
		case ssmmsg.PayloadOutput:
			h.output <- append([]byte(nil), m.Payload...)
		}
		return true
	}})
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case b := <-out:
				_ = ws.WriteMessage(websocket.BinaryMessage, b)
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() { h.ep.Close(); ws.Close(); close(stop) })
	open, _ := json.Marshal(ssmmsg.OpenDataChannelInput{MessageSchemaVersion: "1.0", RequestId: reliable.NewID().String(),
		TokenValue: token, ClientId: reliable.NewID().String(), ClientVersion: openVersion})
	if err := ws.WriteMessage(websocket.TextMessage, open); err != nil {
		t.Fatal(err)
	}
	h.ep.Attach(func(b []byte) error { out <- b; return nil })
	go func() {
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			m, err := ssmmsg.Decode(data)
			if err != nil {
				continue
			}
			if o := h.ep.Receive(m); o != nil && o.Type == ssmmsg.ChannelClosed {
				cc, _ := ssmmsg.ParseChannelClosed(o)
				h.closed <- cc.Output
			}
		}
	}()
	return h
}

// TestClientVersionFromHandshakeResponse: the emulated agent decides smux or
// basic mode from the HandshakeResponse's ClientVersion, as the real agent
// does (amazon-ssm-agent datachannel.go handleHandshakeResponse; §4.3, §6.1),
// and ignores the one in OpenDataChannelInput. A plugin older than 1.2.650.0
// sends it only in the HandshakeResponse; with the old behaviour the lab chose
// basic mode while such a plugin spoke smux.
func TestClientVersionFromHandshakeResponse(t *testing.T) {
	l := labtest.Start(t, lab.Options{})
	port := labtest.Serve(t, echo)
	params := map[string][]string{"portNumber": {strconv.Itoa(port)}, "localPortNumber": {"0"}}
	// smux v1: SYN for stream 3, then PSH "ping" on stream 3 (§6.2 frame layout).
	syn := []byte{1, 0, 0, 0, 3, 0, 0, 0}
	psh := append([]byte{1, 2, 4, 0, 3, 0, 0, 0}, "ping"...)
	for _, c := range []struct {
		name, open, hs string
		mux            bool
	}{
		{"only in HandshakeResponse (plugin < 1.2.650.0)", "", "1.2.497.0", true},
		{"both", "1.3.0.0", "1.3.0.0", true},
		{"OpenDataChannelInput says mux, HandshakeResponse says too old", "1.3.0.0", "1.0.0.0", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ss := labtest.StartSession(t, l, "gpu1", "AWS-StartPortForwardingSession", params)
			h := openHand(t, ss.StreamURL, ss.Token, c.open, c.hs)
			// The handshake completes before Output is accepted; data sent
			// earlier is acked and discarded by the agent (§5.4), so wait a little.
			deadline := time.Now().Add(10 * time.Second)
			for h.ep.Expected() < 2 { // HandshakeRequest (0) and HandshakeComplete (1) delivered
				if time.Now().After(deadline) {
					t.Fatal("no HandshakeComplete")
				}
				time.Sleep(5 * time.Millisecond)
			}
			if _, err := h.ep.Send(context.Background(), ssmmsg.PayloadOutput, append(append([]byte(nil), syn...), psh...)); err != nil {
				t.Fatal(err)
			}
			var got []byte
			want := psh // mux: the agent's smux server answers with a PSH of the echoed bytes
			if !c.mux {
				want = append(append([]byte(nil), syn...), psh...) // basic: the target echoes the raw bytes
			}
			for len(got) < len(want) {
				select {
				case b := <-h.output:
					got = append(got, b...)
				case out := <-h.closed:
					t.Fatalf("session closed: %q", out)
				case <-time.After(10 * time.Second):
					t.Fatalf("got %x, want %x", got, want)
				}
			}
			if !bytes.Equal(got[:len(want)], want) {
				t.Fatalf("agent answered %x, want %x (mux=%v)", got, want, c.mux)
			}
		})
	}
}
