// Package openvpntest runs a real OpenVPN 2.6 server and client on loopback
// for tests: TLS mode with --dev null (no tun device, no root), the server
// with --crl-verify and remote-cert-tls client, the client from an .ovpn
// profile whose transport is rewritten to TCP on 127.0.0.1 (everything else,
// inline <ca>/<cert>/<key> and remote-cert-tls server included, is used as
// written). It is only for tests; openvpn must be installed (tests fail, not
// skip, without it).
package openvpntest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/ovpn"
)

// Server is what the OpenVPN server needs, as PEM.
type Server struct {
	CA, Cert, Key, CRL []byte
}

// Loopback rewrites only the transport of a profile for a local server:
// dev null instead of tun, TCP to 127.0.0.1:port, no random hostname. Every
// TLS setting, remote-cert-tls and the inline blocks stay as written.
func Loopback(t testing.TB, profile []byte, port int) []byte {
	t.Helper()
	p, err := ovpn.Parse(profile)
	if err != nil {
		t.Fatal(err)
	}
	for i, it := range p.Items {
		switch it.Directive() {
		case "dev":
			p.Items[i].Line = "dev null"
		case "proto":
			p.Items[i].Line = "proto tcp-client"
		case "remote":
			p.Items[i].Line = fmt.Sprintf("remote 127.0.0.1 %d", port)
		case "remote-random-hostname", "resolv-retry":
			p.Items[i].Line = "# " + it.Line
		}
	}
	return append(p.Marshal(), []byte("connect-retry-max 1\n")...)
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Attempt runs a real OpenVPN server (TLS, --dev null, srv's certificate
// and CRL, remote-cert-tls client) and a real OpenVPN client with profile,
// until the server logs an outcome (a completed handshake on both sides, a
// verification error or a TLS error). It returns the server's and the
// client's logs.
func Attempt(t testing.TB, srv Server, profile []byte) (server, client string) {
	t.Helper()
	if _, err := exec.LookPath("openvpn"); err != nil {
		t.Fatalf("openvpn is required (apt-get install openvpn): %v", err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	port := freePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var slog, clog logBuf
	s := exec.CommandContext(ctx, "openvpn", "--tls-server", "--dev", "null", "--proto", "tcp-server",
		"--local", "127.0.0.1", "--port", fmt.Sprint(port), "--dh", "none",
		"--ca", write("ca.crt", srv.CA), "--cert", write("server.crt", srv.Cert), "--key", write("server.key", srv.Key),
		"--crl-verify", write("crl.pem", srv.CRL), "--remote-cert-tls", "client", "--verb", "3")
	s.Stdout, s.Stderr = &slog, &slog
	if err := s.Start(); err != nil {
		t.Fatalf("start openvpn server: %v", err)
	}
	defer func() { s.Process.Kill(); s.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(slog.String(), "Listening for incoming TCP connection") {
		if time.Now().After(deadline) {
			t.Fatalf("openvpn server did not listen:\n%s", slog.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	c := exec.CommandContext(ctx, "openvpn", "--config", write("client.ovpn", Loopback(t, profile, port)))
	c.Stdout, c.Stderr = &clog, &clog
	if err := c.Start(); err != nil {
		t.Fatalf("start openvpn client: %v", err)
	}
	defer func() { c.Process.Kill(); c.Wait() }()
	outcome := regexp.MustCompile(`Peer Connection Initiated|VERIFY ERROR: depth=0|TLS Error`)
	for !outcome.MatchString(slog.String()) || (strings.Contains(slog.String(), "Peer Connection Initiated") && !strings.Contains(clog.String(), "Peer Connection Initiated")) {
		if ctx.Err() != nil || time.Now().After(deadline.Add(5*time.Second)) {
			t.Fatalf("no outcome.\nserver:\n%s\nclient:\n%s", slog.String(), clog.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return slog.String(), clog.String()
}
