package ovpn_test

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
	"github.com/devgate/devgate/internal/pki"
)

// awsProfile is what ExportClientVpnClientConfiguration returns for an
// endpoint whose server certificate chains to ca (shape from the Client VPN
// administrator guide, cvpn-working-endpoint-export.md).
func awsProfile(ca []byte) []byte {
	return []byte("client\ndev tun\nproto udp\nremote cvpn-endpoint-0123456789abcdef0.prod.clientvpn.us-east-1.amazonaws.com 443\n" +
		"remote-random-hostname\nresolv-retry infinite\nnobind\nremote-cert-tls server\ncipher AES-256-GCM\nverb 3\n" +
		"<ca>\n" + string(ca) + "\n</ca>\n\n\nreneg-sec 0\n")
}

// loopback rewrites only the transport of a profile for a local server:
// dev null instead of tun, TCP to 127.0.0.1:port, no random hostname. Every
// TLS setting, remote-cert-tls and the inline blocks stay as devgate wrote them.
func loopback(t *testing.T, profile []byte, port int) []byte {
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

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// attempt runs a real OpenVPN server (TLS, --dev null, the PKI's server
// certificate and CRL, remote-cert-tls client) and a real OpenVPN client
// with profile, until the server logs one of the outcomes. It returns the
// server's and the client's logs.
func attempt(t *testing.T, p *pki.PKI, profile []byte) (server, client string) {
	t.Helper()
	srv, err := p.Server()
	if err != nil {
		t.Fatal(err)
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
		"--ca", p.CACertPath(), "--cert", write("server.crt", srv.CertPEM), "--key", write("server.key", srv.KeyPEM),
		"--crl-verify", p.CRLPath(), "--remote-cert-tls", "client", "--verb", "3")
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
	c := exec.CommandContext(ctx, "openvpn", "--config", write("client.ovpn", loopback(t, profile, port)))
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

func profileFor(t *testing.T, p *pki.PKI, b *pki.Bundle) []byte {
	t.Helper()
	out, err := ovpn.AddCredentials(awsProfile(p.CAPEM()), ovpn.Credentials{Cert: b.CertPEM, Key: b.KeyPEM})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOpenVPNHandshake: a valid client completes the TLS handshake with a
// real OpenVPN server; a revoked one and an expired one are refused by it.
func TestOpenVPNHandshake(t *testing.T) {
	if _, err := exec.LookPath("openvpn"); err != nil {
		t.Fatalf("openvpn is required (apt-get install openvpn): %v", err)
	}
	dir := filepath.Join(t.TempDir(), "pki")
	const pass = "correct horse battery"
	opts := pki.Options{ScryptWorkFactor: 10}
	p, err := pki.Init(dir, pki.InitParams{ServerName: "vpn.example.com"}, pass, opts)
	if err != nil {
		t.Fatal(err)
	}
	alice, err := p.Issue("alice", pki.KindClient, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := p.Issue("bob", pki.KindClient, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	// carol's one-day certificate was issued ten days ago.
	past, err := pki.Open(dir, pki.Options{ScryptWorkFactor: 10, Now: func() time.Time { return time.Now().AddDate(0, 0, -10) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := past.Unlock(pass); err != nil {
		t.Fatal(err)
	}
	carol, err := past.Issue("carol", pki.KindClient, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	bobProfile := profileFor(t, p, bob)
	if _, err := p.Revoke("bob", pki.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}

	t.Run("valid", func(t *testing.T) {
		s, c := attempt(t, p, profileFor(t, p, alice))
		if !strings.Contains(s, "VERIFY OK: depth=0, CN=alice") || !strings.Contains(s, "[alice] Peer Connection Initiated") {
			t.Fatalf("server did not accept alice:\n%s", s)
		}
		// The client checked the server's EKU (remote-cert-tls server from the AWS profile).
		if !strings.Contains(c, "VERIFY EKU OK") || !strings.Contains(c, "VERIFY OK: depth=0, CN=vpn.example.com") || !strings.Contains(c, "Peer Connection Initiated") {
			t.Fatalf("client did not complete the handshake:\n%s", c)
		}
		t.Logf("server: %s", grep(s, "Control Channel:"))
	})
	t.Run("revoked", func(t *testing.T) {
		s, _ := attempt(t, p, bobProfile)
		if !strings.Contains(s, "VERIFY ERROR: depth=0, error=certificate revoked: CN=bob") || strings.Contains(s, "Peer Connection Initiated") {
			t.Fatalf("server did not refuse revoked bob:\n%s", s)
		}
	})
	t.Run("expired", func(t *testing.T) {
		s, _ := attempt(t, p, profileFor(t, p, carol))
		if !strings.Contains(s, "VERIFY ERROR: depth=0, error=certificate has expired: CN=carol") || strings.Contains(s, "Peer Connection Initiated") {
			t.Fatalf("server did not refuse expired carol:\n%s", s)
		}
	})
}

func grep(log, what string) string {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, what) {
			return l
		}
	}
	return ""
}
