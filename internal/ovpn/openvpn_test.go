package ovpn_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/ovpn"
	"github.com/devgate/devgate/internal/ovpn/openvpntest"
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

// attempt connects with profile to a server using p's server certificate and CRL.
func attempt(t *testing.T, p *pki.PKI, profile []byte) (server, client string) {
	t.Helper()
	srv, err := p.Server()
	if err != nil {
		t.Fatal(err)
	}
	crl, err := p.CRLPEM()
	if err != nil {
		t.Fatal(err)
	}
	return openvpntest.Attempt(t, openvpntest.Server{CA: p.CAPEM(), Cert: srv.CertPEM, Key: srv.KeyPEM, CRL: crl}, profile)
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
