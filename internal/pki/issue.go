package pki

import (
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

func pkixName(cn string) pkix.Name { return pkix.Name{CommonName: cn} }

// readIndex reads and checks the index: its own syntax and checksum, then
// every entry against the archived certificate certs/SERIAL.pem (present,
// same serial, name and expiry, signed by this CA), and the serial file.
// The caller holds the lock.
func (p *PKI) readIndex() ([]Entry, error) {
	b, err := os.ReadFile(p.path(fileIndex))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &IndexError{Msg: "index.txt is missing"}
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read the index: %w", err)
	}
	entries, err := ParseIndex(b)
	if err != nil {
		return nil, err
	}
	for i, e := range entries {
		c, err := p.archived(e.Serial)
		if err != nil {
			return nil, &IndexError{i + 1, err.Error()}
		}
		if c.Subject.CommonName != e.Name || !c.NotAfter.Equal(e.Expiry) {
			return nil, &IndexError{i + 1, fmt.Sprintf("does not match certs/%s.pem (CN %q, expiry %s)", e.SerialHex(), c.Subject.CommonName, c.NotAfter.UTC().Format(time.RFC3339))}
		}
	}
	next, err := p.readHex(fileSerial)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e.Serial.Cmp(next) >= 0 {
			return nil, &IndexError{Msg: fmt.Sprintf("serial file (%s) is not above serial %s in the index", serialHex(next), e.SerialHex())}
		}
	}
	return entries, nil
}

func (p *PKI) archived(serial *big.Int) (*x509.Certificate, error) {
	name := filepath.Join(dirCerts, serialHex(serial)+".pem")
	b, err := os.ReadFile(p.path(name))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	c, err := parseCertPEM(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	if c.SerialNumber.Cmp(serial) != 0 {
		return nil, fmt.Errorf("%s holds serial %s", name, serialHex(c.SerialNumber))
	}
	if err := c.CheckSignatureFrom(p.caCert); err != nil {
		return nil, fmt.Errorf("%s is not signed by this CA: %v", name, err)
	}
	return c, nil
}

func (p *PKI) readHex(file string) (*big.Int, error) {
	b, err := os.ReadFile(p.path(file))
	if err != nil {
		return nil, &IndexError{Msg: fmt.Sprintf("%s: %v", file, err)}
	}
	s := strings.TrimSpace(string(b))
	n, ok := new(big.Int).SetString(s, 16)
	if !ok || n.Sign() <= 0 || len(s) > maxSerialHexLen {
		return nil, &IndexError{Msg: fmt.Sprintf("%s holds %q, not a positive hex number", file, s)}
	}
	return n, nil
}

func (p *PKI) writeIndex(entries []Entry) error {
	return writeFile(p.path(fileIndex), MarshalIndex(entries))
}

// Issue creates a certificate and key for name: clientAuth for KindClient,
// serverAuth with name as DNS SAN for KindServer, valid for days (0 means
// DefaultCertDays). An unrevoked certificate of the same name (valid or
// expired) makes it fail with ErrExists unless force is set; with force the
// old one is revoked as superseded and the CRL re-signed.
func (p *PKI) Issue(name string, kind Kind, days int, force bool) (*Bundle, error) {
	if p.caKey == nil {
		return nil, ErrLocked
	}
	if err := checkKind(name, kind); err != nil {
		return nil, err
	}
	key, err := rsa.GenerateKey(p.opts.rand(), KeyBits) // outside the lock: it is the slow part
	if err != nil {
		return nil, fmt.Errorf("failed to generate a key: %w", err)
	}
	unlock, err := lockDir(p.dir, true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return p.issueWithKey(name, kind, days, force, key, ReasonSuperseded)
}

func checkKind(name string, kind Kind) error {
	if err := CheckName(name); err != nil {
		return err
	}
	switch kind {
	case KindClient:
	case KindServer:
		return CheckServerName(name)
	default:
		return fmt.Errorf("unknown certificate kind %q", kind)
	}
	return nil
}

func (p *PKI) issueLocked(name string, kind Kind, days int, force bool) (*Bundle, error) {
	if err := checkKind(name, kind); err != nil {
		return nil, err
	}
	key, err := rsa.GenerateKey(p.opts.rand(), KeyBits)
	if err != nil {
		return nil, fmt.Errorf("failed to generate a key: %w", err)
	}
	return p.issueWithKey(name, kind, days, force, key, ReasonSuperseded)
}

// issueWithKey does the work of Issue and Renew under the lock. Write order:
// serial file, certs/SERIAL.pem, issued/ and private/ files, then the index
// (the commit point), then the CRL when an old certificate was revoked.
func (p *PKI) issueWithKey(name string, kind Kind, days int, force bool, key *rsa.PrivateKey, oldReason Reason) (*Bundle, error) {
	days = orDefault(days, DefaultCertDays)
	if days < 1 {
		return nil, errors.New("days must be at least 1")
	}
	entries, err := p.readIndex()
	if err != nil {
		return nil, err
	}
	now := p.opts.now()
	old := -1
	for i, e := range entries {
		if e.Name == name && !e.Revoked {
			old = i
		}
	}
	if old >= 0 && !force {
		e := entries[old]
		return nil, fmt.Errorf("certificate %q (serial %s, %s) %w; revoke it first, use `pki renew %s`, or pass --force to supersede it",
			name, e.SerialHex(), e.Status(now), ErrExists, name)
	}
	serial, err := p.readHex(fileSerial)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e.Serial.Cmp(serial) >= 0 {
			serial = new(big.Int).Add(e.Serial, big.NewInt(1))
		}
	}
	if err := writeFile(p.path(fileSerial), []byte(serialHex(new(big.Int).Add(serial, big.NewInt(1)))+"\n")); err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkixName(name),
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.AddDate(0, 0, days).Truncate(time.Second),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  false,
	}
	if tmpl.NotAfter.After(p.caCert.NotAfter) {
		return nil, fmt.Errorf("a %d-day certificate would outlive the CA (expires %s); use fewer days", days, p.caCert.NotAfter.UTC().Format("2006-01-02"))
	}
	switch kind {
	case KindServer:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{name}
	case KindClient:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(p.opts.rand(), tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		return nil, fmt.Errorf("failed to sign the certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	certPEM := pemCert(der)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	if err := writeFile(p.path(filepath.Join(dirCerts, serialHex(serial)+".pem")), certPEM); err != nil {
		return nil, err
	}
	if err := writeFile(p.CertPath(name), certPEM); err != nil {
		return nil, err
	}
	if err := writeFile(p.KeyPath(name), keyPEM); err != nil {
		return nil, err
	}
	if old >= 0 {
		entries[old].Revoked, entries[old].RevokedAt, entries[old].Reason = true, now, oldReason
	}
	e := Entry{Expiry: cert.NotAfter, Serial: serial, Kind: kind, Name: name}
	entries = append(entries, e)
	if err := p.writeIndex(entries); err != nil {
		return nil, err
	}
	if old >= 0 {
		if _, err := p.crlLocked(0); err != nil {
			return nil, err
		}
	}
	return &Bundle{Entry: e, Cert: cert, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// Renew issues a new key and certificate for name, of the same kind as its
// current (unrevoked, possibly expired) certificate, and revokes the old one
// as superseded (re-signing the CRL). Import the new CRL and hand out the new
// profile together.
func (p *PKI) Renew(name string, days int) (*Bundle, error) {
	if p.caKey == nil {
		return nil, ErrLocked
	}
	if err := CheckName(name); err != nil {
		return nil, err
	}
	key, err := rsa.GenerateKey(p.opts.rand(), KeyBits)
	if err != nil {
		return nil, fmt.Errorf("failed to generate a key: %w", err)
	}
	unlock, err := lockDir(p.dir, true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	entries, err := p.readIndex()
	if err != nil {
		return nil, err
	}
	kind := Kind("")
	for _, e := range entries {
		if e.Name == name && !e.Revoked {
			kind = e.Kind
		}
	}
	if kind == "" {
		return nil, fmt.Errorf("no unrevoked certificate named %q to renew (%w; use `pki issue`)", name, ErrNotFound)
	}
	return p.issueWithKey(name, kind, days, true, key, ReasonSuperseded)
}

// Revoke revokes the current certificate of name with reason, deletes its
// issued/ and private/ files (the archive in certs/ stays) and re-signs the
// CRL. It returns the revoked entry.
func (p *PKI) Revoke(name string, reason Reason) (Entry, error) {
	if p.caKey == nil {
		return Entry{}, ErrLocked
	}
	if reason < ReasonUnspecified || reason > ReasonCertificateHold {
		return Entry{}, fmt.Errorf("bad revocation reason %d", reason)
	}
	unlock, err := lockDir(p.dir, true)
	if err != nil {
		return Entry{}, err
	}
	defer unlock()
	entries, err := p.readIndex()
	if err != nil {
		return Entry{}, err
	}
	idx := -1
	for i, e := range entries {
		if e.Name == name && !e.Revoked {
			idx = i
		}
	}
	if idx < 0 {
		return Entry{}, fmt.Errorf("no unrevoked certificate named %q (%w)", name, ErrNotFound)
	}
	e := &entries[idx]
	e.Revoked, e.RevokedAt, e.Reason, e.reasonText = true, p.opts.now(), reason, true
	if err := p.writeIndex(entries); err != nil {
		return Entry{}, err
	}
	if _, err := p.crlLocked(0); err != nil {
		return Entry{}, err
	}
	for _, f := range []string{p.CertPath(name), p.KeyPath(name)} {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return *e, fmt.Errorf("revoked, but failed to remove %s: %w", f, err)
		}
	}
	return *e, nil
}

// Listing is the index with each entry's status, and the CRL's state.
type Listing struct {
	Entries       []Entry
	CRLNumber     *big.Int  // of crl.pem; nil when there is none
	CRLNextUpdate time.Time // of crl.pem
}

// List returns every certificate in the index (oldest first) and the CRL's
// number and nextUpdate. It needs no passphrase.
func (p *PKI) List() (*Listing, error) {
	unlock, err := lockDir(p.dir, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	entries, err := p.readIndex()
	if err != nil {
		return nil, err
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].Serial.Cmp(entries[j].Serial) < 0 })
	l := &Listing{Entries: entries}
	if crl, err := p.readCRL(); err == nil && crl != nil {
		l.CRLNumber, l.CRLNextUpdate = crl.Number, crl.NextUpdate
	} else if err != nil {
		return nil, err
	}
	return l, nil
}

// Server returns the current server certificate's bundle.
func (p *PKI) Server() (*Bundle, error) {
	l, err := p.List()
	if err != nil {
		return nil, err
	}
	name := ""
	for _, e := range l.Entries {
		if e.Kind == KindServer && !e.Revoked {
			name = e.Name
		}
	}
	if name == "" {
		return nil, fmt.Errorf("no unrevoked server certificate (%w)", ErrNotFound)
	}
	return p.Current(name)
}
