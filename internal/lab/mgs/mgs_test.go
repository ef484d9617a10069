package mgs_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/xtaci/smux"
	"go.uber.org/goleak"

	"github.com/devgate/devgate/internal/datachannel"
	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labtest"
	"github.com/devgate/devgate/internal/lab/mgs"
	"github.com/devgate/devgate/internal/reliable"
	"github.com/devgate/devgate/internal/ssmmsg"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTokens(t *testing.T) {
	s := mgs.New(mgs.Config{})
	defer s.Close()
	tok, err := s.Create(mgs.SessionSpec{SessionID: "s-1", Target: "i-1"})
	if err != nil || tok == "" {
		t.Fatalf("Create: %q %v", tok, err)
	}
	tok2, err := s.Resume("s-1")
	if err != nil || tok2 == "" || tok2 == tok {
		t.Fatalf("Resume: %q %v (first %q)", tok2, err, tok)
	}
	if _, err := s.Resume("nope"); !errors.Is(err, mgs.ErrUnknownSession) {
		t.Fatalf("Resume unknown: %v", err)
	}
	s.TerminateTarget("i-1", "stopped")
	if tok3, err := s.Resume("s-1"); err != nil || tok3 != "" {
		t.Fatalf("Resume after end: %q %v", tok3, err)
	}
}

func echo(c net.Conn) { _, _ = io.Copy(c, c) }

func openDC(t *testing.T, l *lab.Lab, doc string, params map[string][]string) *datachannel.Session {
	t.Helper()
	ss := labtest.StartSession(t, l, "gpu1", doc, params)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := datachannel.Open(ctx, datachannel.Config{StreamURL: ss.StreamURL, SessionID: ss.ID, Token: ss.Token,
		Resume: labtest.Resume(l, ss.ID)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rawConn opens a data-channel WebSocket by hand, to send what a well-behaved client never would.
type rawConn struct {
	t  *testing.T
	ws *websocket.Conn
}

func openRaw(t *testing.T, url, token string) *rawConn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { ws.Close() })
	open, _ := json.Marshal(ssmmsg.OpenDataChannelInput{MessageSchemaVersion: "1.0", RequestId: reliable.NewID().String(),
		TokenValue: token, ClientId: reliable.NewID().String(), ClientVersion: "1.3.0.0"})
	if err := ws.WriteMessage(websocket.TextMessage, open); err != nil {
		t.Fatal(err)
	}
	return &rawConn{t: t, ws: ws}
}

// waitEnd reads until channel_closed (returning its Output) or a close frame (returning its text).
func (r *rawConn) waitEnd() (closedOutput string, closeText string) {
	out, ce := r.waitEndCode()
	if ce != nil {
		return out, ce.Text
	}
	return out, ""
}

func (r *rawConn) waitEndCode() (string, *websocket.CloseError) {
	r.t.Helper()
	_ = r.ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		mt, data, err := r.ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return "", ce
			}
			r.t.Fatalf("read: %v", err)
		}
		if mt != websocket.BinaryMessage {
			r.t.Fatalf("the lab sent a non-binary frame")
		}
		m, err := ssmmsg.Decode(data)
		if err != nil {
			r.t.Fatalf("the lab sent a malformed frame: %v", err)
		}
		if m.Type == ssmmsg.ChannelClosed {
			cc, err := ssmmsg.ParseChannelClosed(m)
			if err != nil {
				r.t.Fatal(err)
			}
			return cc.Output, nil
		}
	}
}

func frame(t *testing.T, m ssmmsg.Message) []byte {
	m.SchemaVersion, m.CreatedDate, m.MessageID = 1, uint64(time.Now().UnixMilli()), reliable.NewID()
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBadInputEndsOnlyThatSession runs a transfer on one session while other
// sessions send malformed frames, wrong and reused tokens, text frames after
// the open frame and oversized frames; each of those ends alone, with a clear
// reason, and the transfer finishes byte-exact.
func TestBadInputEndsOnlyThatSession(t *testing.T) {
	l := labtest.Start(t, lab.Options{})
	port := labtest.Serve(t, echo)
	params := map[string][]string{"portNumber": {strconv.Itoa(port)}}
	good := openDC(t, l, "AWS-StartSSHSession", params)

	data := make([]byte, 4<<20)
	rand.Read(data)
	werr := make(chan error, 1)
	go func() { _, err := good.Write(data); werr <- err }()
	rerr := make(chan error, 1)
	got := make([]byte, len(data))
	go func() { _, err := io.ReadFull(good, got); rerr <- err }()

	digest := ssmmsg.Message{Type: ssmmsg.InputStreamData, PayloadType: ssmmsg.PayloadOutput, Payload: []byte("abc")}
	badDigest := frame(t, digest)
	badDigest[len(badDigest)-1] ^= 0xff
	cases := []struct {
		name string
		send func(r *rawConn)
		want string
	}{
		{"short frame", func(r *rawConn) { r.ws.WriteMessage(websocket.BinaryMessage, []byte{0, 0, 0, 116, 'x'}) }, "protocol error"},
		{"frame of 119 bytes", func(r *rawConn) { r.ws.WriteMessage(websocket.BinaryMessage, make([]byte, 119)) }, "protocol error"},
		{"digest mismatch", func(r *rawConn) { r.ws.WriteMessage(websocket.BinaryMessage, badDigest) }, "digest"},
		{"text frame after open", func(r *rawConn) { r.ws.WriteMessage(websocket.TextMessage, []byte(`{"x":1}`)) }, "text frame"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ss := labtest.StartSession(t, l, "gpu1", "AWS-StartSSHSession", params)
			r := openRaw(t, ss.StreamURL, ss.Token)
			c.send(r)
			out, closeText := r.waitEnd()
			if !strings.Contains(out, c.want) {
				t.Fatalf("channel_closed output %q (close %q), want it to mention %q", out, closeText, c.want)
			}
		})
	}
	t.Run("oversized frame", func(t *testing.T) {
		ss := labtest.StartSession(t, l, "gpu1", "AWS-StartSSHSession", params)
		r := openRaw(t, ss.StreamURL, ss.Token)
		r.ws.WriteMessage(websocket.BinaryMessage, make([]byte, 1<<20))
		if _, ce := r.waitEndCode(); ce == nil || ce.Code != websocket.CloseMessageTooBig {
			t.Fatalf("close %v, want 1009 message too big", ce)
		}
		// The close frame is written inside the read that fails, just before the lab
		// ends the session: give it a moment.
		deadline := time.Now().Add(5 * time.Second)
		for {
			tok, _ := l.Mgs().Resume(ss.ID)
			if tok == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the session survived an oversized frame")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	t.Run("wrong token", func(t *testing.T) {
		ss := labtest.StartSession(t, l, "gpu1", "AWS-StartSSHSession", params)
		r := openRaw(t, ss.StreamURL, "forged-token")
		if _, text := r.waitEnd(); !strings.Contains(text, "token") {
			t.Fatalf("close text %q, want a token error", text)
		}
		// The session itself is unharmed: the right token still opens it.
		openRaw(t, ss.StreamURL, ss.Token)
	})
	t.Run("unknown session", func(t *testing.T) {
		url := strings.Replace(labtest.StartSession(t, l, "gpu1", "AWS-StartSSHSession", params).StreamURL,
			"/v1/data-channel/", "/v1/data-channel/nope-", 1)
		_, resp, err := websocket.DefaultDialer.Dial(url, nil)
		if err == nil || resp == nil || resp.StatusCode != 404 {
			t.Fatalf("unknown session: err %v resp %v, want 404", err, resp)
		}
	})

	if err := <-werr; err != nil {
		t.Fatalf("good session write: %v", err)
	}
	if err := <-rerr; err != nil {
		t.Fatalf("good session read: %v", err)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatal("the good session's bytes differ")
	}
}

// TestMuxMode drives the lab's smux agent as the official plugin would: smux
// v1 client over the session's Output stream, streams dialled per connection,
// ConnectToPortError for a refused port.
func TestMuxMode(t *testing.T) {
	l := labtest.Start(t, lab.Options{})
	port := labtest.Serve(t, echo)
	s := openDC(t, l, "AWS-StartPortForwardingSession", map[string][]string{"portNumber": {strconv.Itoa(port)}, "localPortNumber": {"0"}})
	if s.Property("type") != "LocalPortForwarding" || !ssmmsg.ClientChoosesMux(s.AgentVersion()) {
		t.Fatalf("handshake type %q agent %q: not a mux session", s.Property("type"), s.AgentVersion())
	}
	cfg := smux.DefaultConfig()
	cfg.Version = 1
	cfg.KeepAliveDisabled = !ssmmsg.ClientSmuxKeepalive(s.AgentVersion())
	cl, err := smux.Client(s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			st, err := cl.OpenStream()
			if err != nil {
				errs <- err
				return
			}
			defer st.Close()
			data := make([]byte, 256<<10+i)
			rand.Read(data)
			go st.Write(data)
			got := make([]byte, len(data))
			if _, err := io.ReadFull(st, got); err != nil {
				errs <- err
				return
			}
			if sha256.Sum256(got) != sha256.Sum256(data) {
				errs <- errors.New("stream bytes differ")
				return
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatalf("stream: %v", err)
		}
	}
}

func TestMuxConnectToPortError(t *testing.T) {
	l := labtest.Start(t, lab.Options{})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := openDC(t, l, "AWS-StartPortForwardingSession", map[string][]string{"portNumber": {strconv.Itoa(closed)}, "localPortNumber": {"0"}})
	cfg := smux.DefaultConfig()
	cfg.Version = 1
	cl, err := smux.Client(s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	st, err := cl.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte("hello"))
	select {
	case f := <-s.Flags():
		if f != ssmmsg.FlagConnectToPortError {
			t.Fatalf("flag %d, want ConnectToPortError", f)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no ConnectToPortError")
	}
	st.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := st.Read(make([]byte, 1)); err == nil {
		t.Fatal("the refused stream is still open")
	}
}

// TestBasicMode: an old client version makes the agent choose basic mode;
// DisconnectToPort closes the target connection and the next data re-dials.
func TestBasicMode(t *testing.T) {
	l := labtest.Start(t, lab.Options{})
	conns := make(chan struct{}, 10)
	port := labtest.Serve(t, func(c net.Conn) { conns <- struct{}{}; echo(c) })
	ss := labtest.StartSession(t, l, "gpu1", "AWS-StartPortForwardingSession", map[string][]string{"portNumber": {strconv.Itoa(port)}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := datachannel.Open(ctx, datachannel.Config{StreamURL: ss.StreamURL, SessionID: ss.ID, Token: ss.Token, ClientVersion: "1.0.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for round := range 2 {
		msg := []byte("round " + strconv.Itoa(round))
		s.Write(msg)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(s, got); err != nil || string(got) != string(msg) {
			t.Fatalf("round %d: %q %v", round, got, err)
		}
		select {
		case <-conns:
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: no target connection", round)
		}
		if err := s.SendFlag(ssmmsg.FlagDisconnectToPort); err != nil {
			t.Fatal(err)
		}
		s.Flush(ctx)
	}
}

// TestTallyLoggedOnLateTerminate: a client's TerminateSession that arrives
// after the service ended the session (sshd closed first) is counted, and the
// log's last tally says so — the log is what a person reads after a road test.
func TestTallyLoggedOnLateTerminate(t *testing.T) {
	var logged strings.Builder
	s := mgs.New(mgs.Config{Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	defer s.Close()
	if _, err := s.Create(mgs.SessionSpec{SessionID: "s-1", Target: "i-1"}); err != nil {
		t.Fatal(err)
	}
	s.TerminateTarget("i-1", "stopped")
	if err := s.ClientTerminate("s-1"); err != nil {
		t.Fatal(err)
	}
	c := s.Counts()
	if c.ClientTerminated != 1 || c.EndedByService != 1 || c.Open != 0 {
		t.Fatalf("counts %v; want terminated by the client 1, by the service 1, open 0", c)
	}
	var last string
	for _, line := range strings.Split(logged.String(), "\n") {
		if strings.Contains(line, "mgs: sessions ") {
			last = line
		}
	}
	if !strings.Contains(last, c.String()) {
		t.Fatalf("last tally logged %q; want %q", last, c.String())
	}
}
