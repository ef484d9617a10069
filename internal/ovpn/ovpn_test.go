package ovpn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"
)

// testPair is a throwaway client certificate and key (self-signed).
func testPair(t testing.TB, eku x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "alice"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{eku}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(k)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})
}

func TestRoundTrip(t *testing.T) {
	b, err := os.ReadFile("testdata/aws-export.ovpn")
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{string(b), strings.ReplaceAll(string(b), "\n", "\r\n"), strings.TrimSuffix(string(b), "\n"), ""} {
		p, err := Parse([]byte(in))
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if got := string(p.Marshal()); got != in {
			t.Fatalf("Marshal(Parse(x)) != x:\n%q\n%q", got, in)
		}
	}
}

func TestAddCredentials(t *testing.T) {
	b, _ := os.ReadFile("testdata/aws-export.ovpn")
	cert, key := testPair(t, x509.ExtKeyUsageClientAuth)
	out, err := AddCredentials(b, Credentials{Cert: cert, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), strings.TrimRight(string(b), "\n")) {
		t.Fatalf("the exported lines were not kept verbatim:\n%s", out)
	}
	if !strings.HasSuffix(string(out), "<cert>\n"+string(cert)+"</cert>\n<key>\n"+string(key)+"</key>\n") {
		t.Fatalf("blocks not appended:\n%s", out)
	}
	p, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := p.Block("cert"); c != string(cert) {
		t.Fatalf("cert block %q", c)
	}
	// Running it again replaces, never duplicates; file directives go too.
	withFiles := string(out) + "cert /home/alice/alice.crt\nkey alice.key\n"
	cert2, key2 := testPair(t, x509.ExtKeyUsageClientAuth)
	out2, err := AddCredentials([]byte(withFiles), Credentials{Cert: cert2, Key: key2})
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(out2), "<cert>"); n != 1 {
		t.Fatalf("%d <cert> blocks", n)
	}
	if strings.Contains(string(out2), string(cert)) || strings.Contains(string(out2), "alice.crt") {
		t.Fatalf("old credentials kept:\n%s", out2)
	}
	// CRLF profiles stay CRLF; a missing <ca> is added from the CA given.
	crlf := "client\r\nremote x 443\r\nremote-cert-tls server"
	out3, err := AddCredentials([]byte(crlf), Credentials{CA: cert, Cert: cert, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.ReplaceAll(string(out3), "\r\n", ""), "\n") || !strings.Contains(string(out3), "<ca>\r\n") {
		t.Fatalf("CRLF not kept: %q", out3)
	}
}

func TestAddCredentialsErrors(t *testing.T) {
	b, _ := os.ReadFile("testdata/aws-export.ovpn")
	cert, key := testPair(t, x509.ExtKeyUsageClientAuth)
	srvCert, srvKey := testPair(t, x509.ExtKeyUsageServerAuth)
	_, otherKey := testPair(t, x509.ExtKeyUsageClientAuth)
	for _, tc := range []struct {
		name    string
		profile string
		cred    Credentials
		want    string
	}{
		{"not a client profile", "dev tun\nproto udp\n", Credentials{Cert: cert, Key: key}, "not an OpenVPN client profile"},
		{"unterminated block", "client\nremote x 1\n<ca>\nabc\n", Credentials{Cert: cert, Key: key}, "never closed"},
		{"stray close", "client\n</ca>\n", Credentials{Cert: cert, Key: key}, "closes no block"},
		{"nested", "client\n<ca>\n<cert>\n</cert>\n</ca>\n", Credentials{Cert: cert, Key: key}, "inside <ca>"},
		{"binary", "client\x00", Credentials{Cert: cert, Key: key}, "NUL"},
		{"key mismatch", string(b), Credentials{Cert: cert, Key: otherKey}, "does not match"},
		{"server cert", string(b), Credentials{Cert: srvCert, Key: srvKey}, "clientAuth"},
		{"not PEM", string(b), Credentials{Cert: []byte("hello"), Key: key}, "bad PEM"},
		{"no ca", "client\nremote x 1\n", Credentials{Cert: cert, Key: key}, "no <ca>"},
	} {
		_, err := AddCredentials([]byte(tc.profile), tc.cred)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	var pe *ParseError
	if _, err := Parse([]byte("<ca>\n")); !errors.As(err, &pe) || pe.Line != 1 {
		t.Errorf("ParseError line: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	b, _ := os.ReadFile("testdata/aws-export.ovpn")
	f.Add(b)
	f.Add([]byte("client\r\n<ca>\r\n\r\n</ca>"))
	f.Add([]byte("<a>\n</a>\n<b>\n</b>"))
	f.Add([]byte(" <key> \nx\n </key> \n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := Parse(in)
		if err != nil {
			return
		}
		if got := p.Marshal(); string(got) != string(in) {
			t.Fatalf("round trip:\n%q\n%q", got, in)
		}
	})
}

func FuzzAddCredentials(f *testing.F) {
	b, _ := os.ReadFile("testdata/aws-export.ovpn")
	f.Add(b)
	f.Add([]byte("client\nremote x 1\n<ca>\nA\n</ca>\n<cert>\nold\n</cert>\ncert f\n"))
	cert, key := testPair(f, x509.ExtKeyUsageClientAuth)
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := AddCredentials(in, Credentials{CA: cert, Cert: cert, Key: key})
		if err != nil {
			return
		}
		p, err := Parse(out)
		if err != nil {
			t.Fatalf("output does not parse: %v\n%q", err, out)
		}
		c, ok := p.Block("cert")
		k, ok2 := p.Block("key")
		blocks := 0
		for _, it := range p.Items {
			if it.Tag == "cert" || it.Tag == "key" {
				blocks++
			}
		}
		if !ok || !ok2 || blocks != 2 {
			t.Fatalf("blocks missing or doubled:\n%q", out)
		}
		norm := func(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }
		if norm(c) != string(cert) || norm(k) != string(key) {
			t.Fatalf("blocks changed:\n%q", out)
		}
		for _, it := range p.Items {
			if d := it.Directive(); d == "cert" || d == "key" {
				t.Fatalf("file directive kept: %q", it.Line)
			}
		}
	})
}
