package pki

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

const testPass = "correct horse battery"

// testOpts makes scrypt cheap; the format is the same as with the default.
func testOpts() Options { return Options{ScryptWorkFactor: 10} }

func initPKI(t *testing.T) (*PKI, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pki")
	p, err := Init(dir, InitParams{ServerName: "vpn.example.com"}, testPass, testOpts())
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	return p, dir
}

func openUnlocked(t *testing.T, dir string, opts Options) *PKI {
	t.Helper()
	p, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := p.Unlock(testPass); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	return p
}

// snapshot hashes every file's content and mode under dir.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			out[rel] = fi.Mode().String()
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		h := sha256.Sum256(b)
		out[rel] = fi.Mode().String() + " " + hex.EncodeToString(h[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameSnapshot(t *testing.T, before, after map[string]string) {
	t.Helper()
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s changed: %q -> %q", k, v, after[k])
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("%s appeared", k)
		}
	}
}

func TestInitLayoutAndPermissions(t *testing.T) {
	p, dir := initPKI(t)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, _ := d.Info()
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
		}
		if strings.Contains(d.Name(), ".tmp") {
			t.Errorf("temporary file left: %s", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The CA key is only ever on disk as age ciphertext.
	b, err := os.ReadFile(filepath.Join(dir, "ca.key.age"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "age-encryption.org/v1\n-> scrypt ") {
		t.Fatalf("ca.key.age is not an age scrypt file: %.60q", b)
	}
	if strings.Contains(string(b), "PRIVATE KEY") {
		t.Fatal("ca.key.age contains a clear key")
	}
	ca := p.CACert()
	if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCRLSign == 0 || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Fatalf("CA usage: IsCA %v KeyUsage %v", ca.IsCA, ca.KeyUsage)
	}
	srv, err := p.Server()
	if err != nil {
		t.Fatal(err)
	}
	if srv.Cert.Subject.CommonName != "vpn.example.com" || len(srv.Cert.DNSNames) != 1 || srv.Cert.DNSNames[0] != "vpn.example.com" {
		t.Fatalf("server CN %q SAN %v", srv.Cert.Subject.CommonName, srv.Cert.DNSNames)
	}
	if k, ok := srv.Cert.PublicKey.(*rsa.PublicKey); !ok || k.N.BitLen() != 2048 {
		t.Fatalf("server key is not RSA-2048: %T", srv.Cert.PublicKey)
	}
	if len(srv.Cert.ExtKeyUsage) != 1 || srv.Cert.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Fatalf("server EKU %v", srv.Cert.ExtKeyUsage)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := srv.Cert.Verify(x509.VerifyOptions{DNSName: "vpn.example.com", Roots: roots}); err != nil {
		t.Fatalf("server cert does not verify: %v", err)
	}
	l, err := p.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Entries) != 1 || l.CRLNumber == nil || l.CRLNumber.Int64() != 1 {
		t.Fatalf("after init: %d entries, CRL number %v", len(l.Entries), l.CRLNumber)
	}
	// Init refuses a non-empty directory.
	if _, err := Init(dir, InitParams{ServerName: "vpn.example.com"}, testPass, testOpts()); !errors.Is(err, ErrExists) {
		t.Fatalf("second Init: %v, want ErrExists", err)
	}
}

func TestInitRejectsBadInput(t *testing.T) {
	for _, tc := range []struct{ server, pass, want string }{
		{"vpn", testPass, "domain name"},
		{"VPN.example.com", testPass, "DNS label"},
		{"vpn.example.com", "short", "at least 8"},
		{"vpn..example.com", testPass, "DNS label"},
	} {
		dir := filepath.Join(t.TempDir(), "pki")
		_, err := Init(dir, InitParams{ServerName: tc.server}, tc.pass, testOpts())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Init(%q, %q) = %v, want %q", tc.server, tc.pass, err, tc.want)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("Init(%q, %q) created %s", tc.server, tc.pass, dir)
		}
	}
}

func TestWrongPassphraseChangesNothing(t *testing.T) {
	_, dir := initPKI(t)
	before := snapshot(t, dir)
	p, err := Open(dir, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	err = p.Unlock("not the passphrase")
	if !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("Unlock = %v, want ErrWrongPassphrase", err)
	}
	if _, err := p.Issue("alice", KindClient, 0, false); !errors.Is(err, ErrLocked) {
		t.Fatalf("Issue while locked = %v, want ErrLocked", err)
	}
	if _, err := p.Revoke("vpn.example.com", ReasonKeyCompromise); !errors.Is(err, ErrLocked) {
		t.Fatalf("Revoke while locked = %v", err)
	}
	if _, err := p.CRL(0); !errors.Is(err, ErrLocked) {
		t.Fatalf("CRL while locked = %v", err)
	}
	after := snapshot(t, dir)
	delete(after, ".lock") // reading takes the lock file, which Init created already
	delete(before, ".lock")
	sameSnapshot(t, before, after)
}

func TestIssueRevokeRenewCRL(t *testing.T) {
	_, dir := initPKI(t)
	p := openUnlocked(t, dir, testOpts())
	alice, err := p.Issue("alice", KindClient, 30, false)
	if err != nil {
		t.Fatal(err)
	}
	if alice.Cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth || alice.Cert.Subject.CommonName != "alice" {
		t.Fatalf("client cert: EKU %v CN %q", alice.Cert.ExtKeyUsage, alice.Cert.Subject.CommonName)
	}
	// A duplicate name is refused and changes nothing.
	before := snapshot(t, dir)
	if _, err := p.Issue("alice", KindClient, 30, false); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate Issue = %v, want ErrExists", err)
	}
	sameSnapshot(t, before, snapshot(t, dir))
	// --force supersedes: the old serial is revoked, the CRL re-signed.
	alice2, err := p.Issue("alice", KindClient, 30, true)
	if err != nil {
		t.Fatal(err)
	}
	if alice2.Entry.Serial.Cmp(alice.Entry.Serial) <= 0 {
		t.Fatalf("serials %v then %v", alice.Entry.Serial, alice2.Entry.Serial)
	}
	crl1 := readCRL(t, p)
	if !crlHas(crl1, alice.Entry.Serial) || crlHas(crl1, alice2.Entry.Serial) {
		t.Fatalf("CRL after --force: %v", crl1.RevokedCertificateEntries)
	}
	if got := crl1.RevokedCertificateEntries[0].ReasonCode; got != int(ReasonSuperseded) {
		t.Fatalf("reason %d, want superseded", got)
	}
	// Revoke with a reason; files of the revoked name are removed.
	if _, err := p.Revoke("alice", ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	crl2 := readCRL(t, p)
	if crl2.Number.Cmp(crl1.Number) <= 0 {
		t.Fatalf("CRL number did not increase: %v then %v", crl1.Number, crl2.Number)
	}
	if !crlHas(crl2, alice2.Entry.Serial) || crl2.NextUpdate.Sub(crl2.ThisUpdate) != DefaultCRLDays*24*time.Hour {
		t.Fatalf("CRL: %v entries, thisUpdate %v nextUpdate %v", len(crl2.RevokedCertificateEntries), crl2.ThisUpdate, crl2.NextUpdate)
	}
	if _, err := os.Stat(p.KeyPath("alice")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("key of revoked alice still there: %v", err)
	}
	if _, err := p.Revoke("alice", ReasonKeyCompromise); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Revoke = %v, want ErrNotFound", err)
	}
	// After revocation the name can be issued again without --force.
	if _, err := p.Issue("alice", KindClient, 30, false); err != nil {
		t.Fatal(err)
	}
	// Standalone CRL: number increments, nextUpdate honours days, and later
	// CRLs signed by revoke keep that period.
	info, err := p.CRL(7)
	if err != nil {
		t.Fatal(err)
	}
	if info.Number.Cmp(crl2.Number) <= 0 || info.NextUpdate.Sub(info.ThisUpdate) != 7*24*time.Hour || info.Revoked != 2 {
		t.Fatalf("CRL(7): number %v, %v, %d revoked", info.Number, info.NextUpdate.Sub(info.ThisUpdate), info.Revoked)
	}
	// Renew: new serial, old superseded.
	bob, err := p.Issue("bob", KindClient, 10, false)
	if err != nil {
		t.Fatal(err)
	}
	bob2, err := p.Renew("bob", 0)
	if err != nil {
		t.Fatal(err)
	}
	if bob2.Entry.Kind != KindClient || !bob2.Cert.NotAfter.After(bob.Cert.NotAfter) {
		t.Fatalf("renewed: kind %v expiry %v (old %v)", bob2.Entry.Kind, bob2.Cert.NotAfter, bob.Cert.NotAfter)
	}
	if c := readCRL(t, p); !crlHas(c, bob.Entry.Serial) || c.NextUpdate.Sub(c.ThisUpdate) != 7*24*time.Hour {
		t.Fatalf("after renew: predecessor in CRL %v, period %v (want 7 days kept)", crlHas(c, bob.Entry.Serial), c.NextUpdate.Sub(c.ThisUpdate))
	}
	if _, err := p.Renew("carol", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Renew(unknown) = %v", err)
	}
	// The index lists everything, in OpenSSL's format.
	l, err := p.List()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range l.Entries {
		got = append(got, fmt.Sprintf("%s %s %s", e.SerialHex(), e.Name, e.Status(time.Now())))
	}
	want := []string{"02 vpn.example.com valid", "03 alice revoked", "04 alice revoked", "05 alice valid", "06 bob revoked", "07 bob valid"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("list:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func readCRL(t *testing.T, p *PKI) *x509.RevocationList {
	t.Helper()
	b, err := p.CRLPEM()
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCRL(b, p.CACert())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func crlHas(c *x509.RevocationList, serial interface{ String() string }) bool {
	for _, e := range c.RevokedCertificateEntries {
		if e.SerialNumber.String() == serial.String() {
			return true
		}
	}
	return false
}

// TestConcurrentIssueUniqueSerials issues from separate PKI handles (each its
// own lock file descriptor, as separate processes would have) at once.
func TestConcurrentIssueUniqueSerials(t *testing.T) {
	_, dir := initPKI(t)
	const n = 8
	handles := make([]*PKI, n)
	for i := range handles {
		handles[i] = openUnlocked(t, dir, testOpts())
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	serials := make([]string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			b, err := handles[i].Issue(fmt.Sprintf("dev%d", i), KindClient, 0, false)
			errs[i] = err
			if err == nil {
				serials[i] = b.Entry.SerialHex()
			}
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(serials)
	for i := 1; i < n; i++ {
		if serials[i] == serials[i-1] {
			t.Fatalf("duplicate serial %s in %v", serials[i], serials)
		}
	}
	l, err := handles[0].List()
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Entries) != n+1 {
		t.Fatalf("index has %d entries, want %d", len(l.Entries), n+1)
	}
}

func TestCorruptIndexDetected(t *testing.T) {
	_, dir := initPKI(t)
	p := openUnlocked(t, dir, testOpts())
	for _, name := range []string{"alice", "bob"} {
		if _, err := p.Issue(name, KindClient, 0, false); err != nil {
			t.Fatal(err)
		}
	}
	idx := filepath.Join(dir, "index.txt")
	orig, _ := os.ReadFile(idx)
	lines := strings.SplitAfter(string(orig), "\n")
	for _, tc := range []struct {
		name    string
		content string
		setup   func()
	}{
		{"truncated mid-line", string(orig[:len(orig)/2]), nil},
		{"last entry dropped", strings.Join(append(lines[:2:2], lines[3:]...), ""), nil},
		{"trailer dropped", strings.Join(lines[:3], ""), nil},
		{"hand edit", strings.Replace(string(orig), "\t/CN=bob", "\t/CN=eve", 1), nil},
		{"empty", "", nil},
		{"archive missing", string(orig), func() { os.Remove(filepath.Join(dir, "certs", "04.pem")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(idx, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.setup != nil {
				tc.setup()
			}
			before := snapshot(t, dir)
			_, err := p.List()
			if !errors.Is(err, ErrCorruptIndex) {
				t.Fatalf("List = %v, want ErrCorruptIndex", err)
			}
			if _, err := p.Issue("carol", KindClient, 0, false); !errors.Is(err, ErrCorruptIndex) {
				t.Fatalf("Issue = %v, want ErrCorruptIndex", err)
			}
			sameSnapshot(t, before, snapshot(t, dir))
		})
	}
}

func TestNamesRejected(t *testing.T) {
	_, dir := initPKI(t)
	p := openUnlocked(t, dir, testOpts())
	for _, n := range []string{"", "../x", "a/b", ".hidden", "with space", strings.Repeat("a", 65)} {
		if _, err := p.Issue(n, KindClient, 0, false); !errors.Is(err, ErrBadName) {
			t.Errorf("Issue(%q) = %v, want ErrBadName", n, err)
		}
	}
}

// opensslVerify runs `openssl verify -crl_check` and returns its combined output.
func opensslVerify(t *testing.T, ca, crl, cert string) (string, error) {
	t.Helper()
	out, err := exec.Command("openssl", "verify", "-crl_check", "-CAfile", ca, "-CRLfile", crl, cert).CombinedOutput()
	return string(out), err
}

func TestOpenSSLVerifyCRL(t *testing.T) {
	_, dir := initPKI(t)
	p := openUnlocked(t, dir, testOpts())
	alice, err := p.Issue("alice", KindClient, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(t.TempDir(), "alice.crt")
	os.WriteFile(certFile, alice.CertPEM, 0o600)
	out, err := opensslVerify(t, p.CACertPath(), p.CRLPath(), certFile)
	if err != nil || !strings.Contains(out, ": OK") {
		t.Fatalf("openssl verify before revocation: %v\n%s", err, out)
	}
	if _, err := p.Revoke("alice", ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	out, err = opensslVerify(t, p.CACertPath(), p.CRLPath(), certFile)
	if err == nil || !strings.Contains(out, "certificate revoked") {
		t.Fatalf("openssl verify after revocation: err %v\n%s", err, out)
	}
	// openssl reads the CRL's number, dates and reason as we meant them.
	text, err := exec.Command("openssl", "crl", "-in", p.CRLPath(), "-noout", "-text").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl crl: %v\n%s", err, text)
	}
	for _, want := range []string{"X509v3 CRL Number", "Next Update:", "Serial Number: 03", "Key Compromise"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("openssl crl -text lacks %q:\n%s", want, text)
		}
	}
}

func TestOpenSSLShowsSANAndEKU(t *testing.T) {
	p, _ := initPKI(t)
	p2 := openUnlocked(t, p.Dir(), testOpts())
	if _, err := p2.Issue("alice", KindClient, 0, false); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file string
		want []string
		not  []string
	}{
		{p.CertPath("vpn.example.com"), []string{"DNS:vpn.example.com", "TLS Web Server Authentication", "Public-Key: (2048 bit)", "Subject: CN = vpn.example.com", "CA:FALSE", "Digital Signature, Key Encipherment"}, []string{"TLS Web Client Authentication"}},
		{p.CertPath("alice"), []string{"TLS Web Client Authentication", "Subject: CN = alice", "Public-Key: (2048 bit)"}, []string{"TLS Web Server Authentication"}},
		{p.CACertPath(), []string{"CA:TRUE", "Certificate Sign, CRL Sign"}, nil},
	} {
		out, err := exec.Command("openssl", "x509", "-in", tc.file, "-noout", "-text").CombinedOutput()
		if err != nil {
			t.Fatalf("openssl x509 %s: %v\n%s", tc.file, err, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("%s: openssl x509 -text lacks %q", filepath.Base(tc.file), w)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(string(out), w) {
				t.Errorf("%s: openssl x509 -text has %q", filepath.Base(tc.file), w)
			}
		}
	}
}

// TestCAKeyNeverInTheClear decrypts the CA key and searches every file of
// the directory for it (PEM, DER, and the RSA modulus's private parts would
// all contain the PKCS#8 DER's base64 or bytes).
func TestCAKeyNeverInTheClear(t *testing.T) {
	p, dir := initPKI(t)
	p2 := openUnlocked(t, dir, testOpts())
	if _, err := p2.Issue("alice", KindClient, 0, false); err != nil {
		t.Fatal(err)
	}
	if err := p2.ChangePassphrase("another long passphrase"); err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(p2.caKey)
	if err != nil {
		t.Fatal(err)
	}
	d := p2.caKey.(*rsa.PrivateKey).D.Bytes()
	needles := map[string][]byte{"DER": der, "base64 line": []byte(base64.StdEncoding.EncodeToString(der)[:64]), "private exponent": d}
	filepath.WalkDir(dir, func(path string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		b, _ := os.ReadFile(path)
		for what, n := range needles {
			if bytes.Contains(b, n) {
				t.Errorf("%s holds the CA key (%s)", path, what)
			}
		}
		return nil
	})
	// The new passphrase works, the old one does not.
	p3, _ := Open(dir, testOpts())
	if err := p3.Unlock(testPass); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("old passphrase: %v", err)
	}
	if err := p3.Unlock("another long passphrase"); err != nil {
		t.Fatal(err)
	}
	_ = p
}

// TestConcurrentIssueProcesses issues from 8 separate processes at once
// (this test binary re-executed), so the flock is exercised across processes.
func TestConcurrentIssueProcesses(t *testing.T) {
	_, dir := initPKI(t)
	const n = 8
	cmds := make([]*exec.Cmd, n)
	outs := make([]*bytes.Buffer, n)
	for i := range cmds {
		cmds[i] = exec.Command(os.Args[0])
		cmds[i].Env = append(os.Environ(), "DEVGATE_PKI_HELPER_DIR="+dir, fmt.Sprintf("DEVGATE_PKI_HELPER_NAME=proc%d", i))
		outs[i] = &bytes.Buffer{}
		cmds[i].Stdout, cmds[i].Stderr = outs[i], outs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("helper %d: %v\n%s", i, err, outs[i])
		}
	}
	p := openUnlocked(t, dir, testOpts())
	l, err := p.List()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range l.Entries {
		if seen[e.SerialHex()] {
			t.Fatalf("duplicate serial %s", e.SerialHex())
		}
		seen[e.SerialHex()] = true
	}
	if len(l.Entries) != n+1 {
		t.Fatalf("%d entries, want %d", len(l.Entries), n+1)
	}
}

// TestMain turns this test binary into one issuing process of
// TestConcurrentIssueProcesses when DEVGATE_PKI_HELPER_DIR is set.
func TestMain(m *testing.M) {
	if dir := os.Getenv("DEVGATE_PKI_HELPER_DIR"); dir != "" {
		p, err := Open(dir, testOpts())
		if err == nil {
			err = p.Unlock(testPass)
		}
		if err == nil {
			_, err = p.Issue(os.Getenv("DEVGATE_PKI_HELPER_NAME"), KindClient, 0, false)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestOpenSSLReadsIndex: `openssl ca -status` reads devgate's index (the
// trailer is a comment to OpenSSL) and agrees on every status.
func TestOpenSSLReadsIndex(t *testing.T) {
	_, dir := initPKI(t)
	p := openUnlocked(t, dir, testOpts())
	p.Issue("alice", KindClient, 0, false)
	p.Issue("bob", KindClient, 0, false)
	p.Revoke("bob", ReasonKeyCompromise)
	cnf := filepath.Join(t.TempDir(), "ca.cnf")
	os.WriteFile(cnf, []byte("[ ca ]\ndefault_ca = d\n[ d ]\ndir = "+dir+"\ndatabase = $dir/index.txt\nserial = $dir/serial\n"+
		"new_certs_dir = $dir/certs\ncertificate = $dir/ca.crt\nprivate_key = $dir/none\ndefault_md = sha256\npolicy = p\n[ p ]\ncommonName = supplied\n"), 0o600)
	for serial, want := range map[string]string{"02": "02=Valid (V)", "03": "03=Valid (V)", "04": "04=Revoked (R)"} {
		out, _ := exec.Command("openssl", "ca", "-config", cnf, "-status", serial).CombinedOutput()
		if !strings.Contains(string(out), want) {
			t.Errorf("openssl ca -status %s: %s, want %q", serial, out, want)
		}
	}
}
