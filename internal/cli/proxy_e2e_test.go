package cli_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/lab"
)

// connectProxy is an HTTP CONNECT proxy (RFC 9110 §9.3.6) that reaches one
// name: it maps name:port to the lab's listener, as a corporate proxy is the
// only way to AWS's endpoints for a laptop without direct DNS or routes.
type connectProxy struct {
	ln       net.Listener
	name     string // host:port the clients ask for
	upstream string // where it really is
	mu       sync.Mutex
	connects []string // the CONNECT targets, in order
}

func startConnectProxy(t *testing.T, name, upstream string) *connectProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &connectProxy{ln: ln, name: name, upstream: upstream}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *connectProxy) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	p.mu.Lock()
	p.connects = append(p.connects, req.Method+" "+req.Host)
	p.mu.Unlock()
	if req.Method != http.MethodConnect || req.Host != p.name {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	up, err := net.Dial("tcp", p.upstream)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	defer up.Close()
	io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, br); up.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { io.Copy(c, up); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	<-done
	<-done
}

func (p *connectProxy) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.connects...)
}

// TestE2EThroughHTTPSProxy: the lab's endpoint has a name only the proxy
// resolves (lab.devgate.test) and serves TLS with its own CA. With
// HTTPS_PROXY set, ssh through the lab's config reaches the instance: the
// API calls and the data channel's WebSocket both go through the proxy
// (CONNECT), since neither could resolve the name itself. Without it,
// connect fails to reach AWS and the hint names HTTPS_PROXY.
func TestE2EThroughHTTPSProxy(t *testing.T) {
	const name = "lab.devgate.test"
	e := newE2E(t, lab.Options{TLS: true, Hostname: name})
	ctx := ctxFor(t, 2*time.Minute)
	_, port, _ := net.SplitHostPort(e.l.Addr())
	if want := "https://" + name + ":" + port; e.l.Endpoint() != want {
		t.Fatalf("endpoint %s, want %s", e.l.Endpoint(), want)
	}
	p := startConnectProxy(t, name+":"+port, e.l.Addr())
	base := envWithout(e.environ, "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")

	// Without the proxy the name does not resolve: AWS cannot be reached.
	stderr, code := runEnv(t, base, "connect", "gpu1", "22")
	if code == 0 || !strings.Contains(stderr, "cannot reach AWS") || !strings.Contains(stderr, "HTTPS_PROXY") {
		t.Fatalf("without the proxy: exit %d\n%s", code, stderr)
	}
	if len(p.seen()) != 0 {
		t.Fatalf("the proxy was used without HTTPS_PROXY: %v", p.seen())
	}

	// With it: ssh works end to end.
	e.environ = append(base, "HTTPS_PROXY=http://"+p.ln.Addr().String())
	attached := e.l.Mgs().Attached()
	var out bytes.Buffer
	if errs, err := e.ssh(ctx, nil, &out, "gpu1", "echo", "through the proxy"); err != nil || out.String() != "through the proxy\n" {
		t.Fatalf("ssh through HTTPS_PROXY: %v %q\n%s", err, out.String(), errs)
	}
	if e.l.Mgs().Attached() <= attached {
		t.Fatal("no data channel was attached")
	}
	seen := p.seen()
	if len(seen) < 2 {
		t.Fatalf("the proxy saw %v: want the API's and the WebSocket's CONNECTs", seen)
	}
	for _, s := range seen {
		if s != "CONNECT "+name+":"+port {
			t.Fatalf("the proxy saw %q", s)
		}
	}
}
