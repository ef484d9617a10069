package forward_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/forward"
	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labtest"
	"github.com/devgate/devgate/internal/testutil"
	"github.com/devgate/devgate/internal/tunnel"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"))
}

// blob is n deterministic bytes (seeded by n).
func blob(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16), byte(n >> 24)})
	r.Read(b)
	return b
}

// server is "the instance's" HTTP server: a listener on 127.0.0.1 (the lab
// maps the instance's localhost ports to this machine's).
type server struct {
	ln   net.Listener
	srv  *http.Server
	port int
	// gate, when set, holds /slow responses after their first MiB until closed.
	gate chan struct{}
}

func startServer(t *testing.T) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: ln, port: ln.Addr().(*net.TCPAddr).Port, gate: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/blob", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		b := blob(n)
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		b := blob(n)
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b[:1<<20])
		w.(http.Flusher).Flush()
		<-s.gate
		w.Write(b[1<<20:])
	})
	s.srv = &http.Server{Handler: mux}
	go s.srv.Serve(ln)
	t.Cleanup(func() {
		select {
		case <-s.gate:
		default:
			close(s.gate)
		}
		s.srv.Close()
	})
	return s
}

// fwd is a running Forwarder with its notifications.
type fwd struct {
	f      *forward.Forwarder
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	mu     sync.Mutex
	notes  []string
	client *http.Client
}

func (w *fwd) note(format string, a ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.notes = append(w.notes, fmt.Sprintf(format, a...))
}

func (w *fwd) notesText() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.notes, "\n")
}

func (w *fwd) url(path string) string {
	return "http://" + w.f.Addr().String() + path
}

// stop is Ctrl-C: it returns when Serve did.
func (w *fwd) stop(t *testing.T) {
	t.Helper()
	w.client.CloseIdleConnections()
	w.cancel()
	select {
	case <-w.done:
		if w.err != nil {
			t.Errorf("Serve: %v", w.err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

func startFwd(t *testing.T, l *lab.Lab, inst string, sp forward.Spec) *fwd {
	t.Helper()
	return startFwdN(t, l, inst, sp, 1)
}

func startFwdN(t *testing.T, l *lab.Lab, inst string, sp forward.Spec, sessions int) *fwd {
	t.Helper()
	w := &fwd{done: make(chan struct{})}
	w.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}, Timeout: testutil.Deadline(60 * time.Second)}
	cfg := l.AWSConfig()
	f, err := forward.Listen(forward.Options{Spec: sp, Notify: w.note, Sessions: sessions,
		Open: func(ctx context.Context) (*tunnel.Conn, error) {
			return tunnel.OpenSession(ctx, cfg, tunnel.Options{Target: inst, Port: sp.RemotePort, Host: sp.Host, Timeout: 30 * time.Second})
		}})
	if err != nil {
		t.Fatal(err)
	}
	w.f = f
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	if err := f.Connect(ctx); err != nil {
		f.Close()
		cancel()
		t.Fatal(err)
	}
	go func() { w.err = f.Serve(ctx); close(w.done) }()
	t.Cleanup(func() {
		cancel()
		<-w.done
	})
	return w
}

func (w *fwd) get(path string) ([]byte, error) {
	resp, err := w.client.Get(w.url(path))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return b, err
	}
	if resp.StatusCode != 200 {
		return b, fmt.Errorf("HTTP %s", resp.Status)
	}
	return b, nil
}

func checkBlob(t *testing.T, got []byte, n int) {
	t.Helper()
	if len(got) != n || sha256.Sum256(got) != sha256.Sum256(blob(n)) {
		t.Fatalf("got %d bytes (want %d), content differs", len(got), n)
	}
}

func TestFiftyConcurrentRequestsShareOneSession(t *testing.T) {
	l := labtest.Start(t, lab.Options{})
	s := startServer(t)
	w := startFwd(t, l, "gpu1", forward.Spec{RemotePort: s.port})
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Go(func() {
			n := 100<<10 + i
			b, err := w.get("/blob?n=" + strconv.Itoa(n))
			if err == nil && !bytes.Equal(b, blob(n)) {
				err = fmt.Errorf("request %d: wrong body (%d bytes)", i, len(b))
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := l.Calls("StartSession"); n != 1 {
		t.Errorf("StartSession called %d times, want 1 (one shared session)", n)
	}
	if a := l.Mgs().Active(); len(a) != 1 {
		t.Errorf("active sessions %v, want 1", a)
	}
	w.stop(t)
	waitNoSessions(t, l)
}

func waitNoSessions(t *testing.T, l *lab.Lab) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(l.Mgs().Active()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("sessions still active after Ctrl-C: %v", l.Mgs().Active())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLargeResponseByteExact(t *testing.T) {
	l := labtest.Start(t, lab.Options{})
	s := startServer(t)
	w := startFwd(t, l, "gpu1", forward.Spec{RemotePort: s.port})
	n := testutil.Size(64 << 20)
	b, err := w.get("/blob?n=" + strconv.Itoa(n))
	if err != nil {
		t.Fatal(err)
	}
	checkBlob(t, b, n)
	w.stop(t)
}

func TestRefusedPortClosesOnlyThatConnection(t *testing.T) {
	l := labtest.Start(t, lab.Options{})
	s := startServer(t)
	w := startFwd(t, l, "gpu1", forward.Spec{RemotePort: s.port})
	const n = 8 << 20
	type result struct {
		b   []byte
		err error
	}
	res := make(chan result, 1)
	go func() { b, err := w.get("/slow?n=" + strconv.Itoa(n)); res <- result{b, err} }()
	// The download is running (its first MiB is out); now nothing listens any more.
	deadline := time.Now().Add(testutil.Deadline(10 * time.Second))
	for {
		if out := l.Mgs().Active(); len(out) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no session")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	s.ln.Close()
	c, err := net.Dial("tcp", w.f.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET /blob?n=10 HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, rerr := io.ReadAll(c)
	c.Close()
	// Closed with nothing delivered: a FIN, or a reset when the forwarder
	// closed the socket before reading the request the client had sent (the
	// kernel answers a close with unread data by RST, RFC 2525 §2.17) — a
	// race, both mean "refused". A timeout (a hang) or data is a failure.
	if len(got) != 0 || rerr != nil && !errors.Is(rerr, syscall.ECONNRESET) {
		t.Fatalf("refused connection: read %q, %v; want it closed with nothing delivered", got, rerr)
	}
	close(s.gate)
	r := <-res
	if r.err != nil {
		t.Fatalf("the download beside the refused connection failed: %v", r.err)
	}
	checkBlob(t, r.b, n)
	if !strings.Contains(w.notesText(), "ConnectToPortError") {
		t.Errorf("no message about the refused port: %q", w.notesText())
	}
	if len(l.Mgs().Active()) != 1 || l.Calls("StartSession") != 1 {
		t.Errorf("the session did not carry on: active %v, StartSession %d", l.Mgs().Active(), l.Calls("StartSession"))
	}
	w.stop(t)
}

func TestWebSocketDropDuringDownload(t *testing.T) {
	// Every WebSocket drops 500 ms after it attached; 16 MiB/s makes the download last 2 s.
	f := labtest.Fast()
	f.DropEvery = 500 * time.Millisecond
	f.BandwidthCap = 16 << 20
	l := labtest.Start(t, lab.Options{Faults: f})
	s := startServer(t)
	w := startFwd(t, l, "gpu1", forward.Spec{RemotePort: s.port})
	const n = 32 << 20
	b, err := w.get("/blob?n=" + strconv.Itoa(n))
	if err != nil {
		t.Fatal(err)
	}
	checkBlob(t, b, n)
	if l.Mgs().Drops() == 0 {
		t.Fatal("no WebSocket was dropped: the test proves nothing")
	}
	if c := l.Calls("StartSession"); c != 1 {
		t.Errorf("StartSession %d times: the drop was not resumed in the same session", c)
	}
	t.Logf("drops: %d, ResumeSession calls: %d", l.Mgs().Drops(), l.Calls("ResumeSession"))
	w.stop(t)
}

func TestSessionEndedByLabIsReplaced(t *testing.T) {
	l := labtest.Start(t, lab.Options{})
	s := startServer(t)
	w := startFwd(t, l, "gpu1", forward.Spec{RemotePort: s.port})
	if _, err := w.get("/blob?n=1000"); err != nil {
		t.Fatal(err)
	}
	w.client.CloseIdleConnections()
	act := l.Mgs().Active()
	if len(act) != 1 {
		t.Fatalf("active %v", act)
	}
	if err := l.Mgs().Terminate(act[0], "Your session timed out due to inactivity and has been terminated."); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(testutil.Deadline(5 * time.Second))
	for !strings.Contains(w.notesText(), "lost") {
		if time.Now().After(deadline) {
			t.Fatalf("no message about the lost session: %q", w.notesText())
		}
		time.Sleep(10 * time.Millisecond)
	}
	b, err := w.get("/blob?n=5000")
	if err != nil {
		t.Fatalf("request after the session ended: %v", err)
	}
	checkBlob(t, b, 5000)
	if c := l.Calls("StartSession"); c != 2 {
		t.Errorf("StartSession %d times, want 2", c)
	}
	if !strings.Contains(w.notesText(), "timed out due to inactivity") {
		t.Errorf("the message does not say why: %q", w.notesText())
	}
	w.stop(t)
	waitNoSessions(t, l)
}

func TestBasicModeOldAgent(t *testing.T) {
	insts := lab.DefaultInstances()
	insts[0].AgentVersion = "3.0.196.0"
	l := labtest.Start(t, lab.Options{Instances: insts})
	s := startServer(t)
	w := startFwd(t, l, "gpu1", forward.Spec{RemotePort: s.port})
	if !strings.Contains(w.notesText(), "one connection at a time") {
		t.Fatalf("basic mode not said: %q", w.notesText())
	}
	w.client.Transport.(*http.Transport).DisableKeepAlives = true
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := range 6 {
		wg.Go(func() {
			n := 200<<10 + i
			b, err := w.get("/blob?n=" + strconv.Itoa(n))
			if err == nil && !bytes.Equal(b, blob(n)) {
				err = fmt.Errorf("request %d: wrong body", i)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if c := l.Calls("StartSession"); c != 1 {
		t.Errorf("StartSession %d times, want 1", c)
	}
	w.stop(t)
	waitNoSessions(t, l)
}

func TestRemoteHostSpec(t *testing.T) {
	l := labtest.Start(t, lab.Options{})
	s := startServer(t)
	w := startFwd(t, l, "gpu1", forward.Spec{Host: "127.0.0.1", RemotePort: s.port})
	b, err := w.get("/blob?n=3000")
	if err != nil {
		t.Fatal(err)
	}
	checkBlob(t, b, 3000)
	w.stop(t)
}

func TestLocalPortInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := busy.Addr().(*net.TCPAddr).Port
	_, err = forward.Listen(forward.Options{Spec: forward.Spec{LocalPort: port, RemotePort: 8888}})
	var e *exitcode.Error
	if !errors.As(err, &e) || e.Class != exitcode.Usage || !strings.Contains(err.Error(), "already in use") || !strings.Contains(e.Hint, "--auto") {
		t.Fatalf("Listen on a busy port: %v", err)
	}
	f, err := forward.Listen(forward.Options{Spec: forward.Spec{LocalPort: port, RemotePort: 8888}, Auto: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Addr().Port == port || f.Addr().Port == 0 {
		t.Fatalf("--auto gave port %d", f.Addr().Port)
	}
}

func TestNoGoroutineLeakAfterCtrlC(t *testing.T) {
	l := labtest.Start(t, lab.Options{})
	s := startServer(t)
	base := goleak.IgnoreCurrent()
	w := startFwd(t, l, "gpu1", forward.Spec{RemotePort: s.port})
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { _, _ = w.get("/blob?n=100000") })
	}
	// Two connections still open (one mid-response) at Ctrl-C.
	held, err := net.Dial("tcp", w.f.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	go func() { _, _ = w.get("/slow?n=4000000") }()
	wg.Wait()
	time.Sleep(200 * time.Millisecond)
	w.stop(t)
	w.client.CloseIdleConnections()
	waitNoSessions(t, l)
	// HTTP keep-alive connections (the SDK's to the lab endpoint, and the
	// test client's) are not devgate's; everything else must be gone.
	goleak.VerifyNone(t, base, goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*conn).serve"),
		goleak.IgnoreAnyFunction("github.com/devgate/devgate/internal/forward_test.startServer.func2"),
		goleak.IgnoreAnyFunction("github.com/devgate/devgate/internal/forward_test.TestNoGoroutineLeakAfterCtrlC.func2"))
}

// TestSessionsSpreadParallelConnections: with Sessions 3, parallel
// connections that find every session busy open more, up to 3; the rest share.
func TestSessionsSpreadParallelConnections(t *testing.T) {
	l := labtest.Start(t, lab.Options{})
	s := startServer(t)
	w := startFwdN(t, l, "gpu1", forward.Spec{RemotePort: s.port}, 3)
	const n = 2 << 20
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		wg.Go(func() {
			b, err := w.get("/slow?n=" + strconv.Itoa(n))
			if err == nil && !bytes.Equal(b, blob(n)) {
				err = errors.New("wrong body")
			}
			errs <- err
		})
	}
	// All six are held after their first MiB: every session is busy.
	deadline := time.Now().Add(testutil.Deadline(10 * time.Second))
	for l.Calls("StartSession") < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	close(s.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if c := l.Calls("StartSession"); c != 3 {
		t.Errorf("StartSession %d times, want 3 (the limit)", c)
	}
	w.stop(t)
	waitNoSessions(t, l)
}
