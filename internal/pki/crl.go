package pki

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"time"
)

// CRLInfo describes a CRL just written.
type CRLInfo struct {
	Path       string
	PEM        []byte
	Number     *big.Int
	ThisUpdate time.Time
	NextUpdate time.Time
	Revoked    int // entries
}

// MaxCRLEntries is Client VPN's limit on revoked certificates in a CRL.
const MaxCRLEntries = 20000

// CRL signs a new CRL of every revoked certificate, valid for days (0 means
// DefaultCRLDays), with the next CRL number, and writes crl.pem.
func (p *PKI) CRL(days int) (*CRLInfo, error) {
	if p.caKey == nil {
		return nil, ErrLocked
	}
	unlock, err := lockDir(p.dir, true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := p.readIndex(); err != nil {
		return nil, err
	}
	return p.crlLocked(days)
}

// crlLocked signs and writes the CRL. The CRL number is the larger of the
// crlnumber file and the current CRL's number plus one; the file is advanced
// before the CRL is written so a crash never reuses a number.
//
// days 0 keeps the current CRL's validity period (so a revoke keeps what
// `pki init --crl-days` or `pki crl --days` chose), else DefaultCRLDays.
func (p *PKI) crlLocked(days int) (*CRLInfo, error) {
	if days == 0 {
		days = DefaultCRLDays
		if cur, err := p.readCRL(); err == nil && cur != nil && !cur.NextUpdate.IsZero() {
			if d := int(cur.NextUpdate.Sub(cur.ThisUpdate).Round(24*time.Hour) / (24 * time.Hour)); d >= 1 {
				days = d
			}
		}
	}
	if days < 1 {
		return nil, errors.New("days must be at least 1")
	}
	b, err := os.ReadFile(p.path(fileIndex))
	if err != nil {
		return nil, fmt.Errorf("failed to read the index: %w", err)
	}
	entries, err := ParseIndex(b)
	if err != nil {
		return nil, err
	}
	num, err := p.readHex(fileCRLNumber)
	if err != nil {
		return nil, err
	}
	if cur, err := p.readCRL(); err != nil {
		return nil, err
	} else if cur != nil && cur.Number != nil && cur.Number.Cmp(num) >= 0 {
		num = new(big.Int).Add(cur.Number, big.NewInt(1))
	}
	now := p.opts.now()
	tmpl := &x509.RevocationList{
		Number:     num,
		ThisUpdate: now,
		NextUpdate: now.AddDate(0, 0, days),
	}
	for _, e := range entries {
		if e.Revoked {
			tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
				SerialNumber: e.Serial, RevocationTime: e.RevokedAt, ReasonCode: int(e.Reason),
			})
		}
	}
	if n := len(tmpl.RevokedCertificateEntries); n > MaxCRLEntries {
		return nil, fmt.Errorf("%d revoked certificates: Client VPN accepts at most %d in a CRL", n, MaxCRLEntries)
	}
	der, err := x509.CreateRevocationList(p.opts.rand(), tmpl, p.caCert, p.caKey)
	if err != nil {
		return nil, fmt.Errorf("failed to sign the CRL: %w", err)
	}
	if err := writeFile(p.path(fileCRLNumber), []byte(serialHex(new(big.Int).Add(num, big.NewInt(1)))+"\n")); err != nil {
		return nil, err
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	if err := writeFile(p.CRLPath(), out); err != nil {
		return nil, err
	}
	return &CRLInfo{Path: p.CRLPath(), PEM: out, Number: num, ThisUpdate: tmpl.ThisUpdate, NextUpdate: tmpl.NextUpdate,
		Revoked: len(tmpl.RevokedCertificateEntries)}, nil
}

// readCRL parses crl.pem and checks its signature; nil when there is none.
func (p *PKI) readCRL() (*x509.RevocationList, error) {
	b, err := os.ReadFile(p.CRLPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read the CRL: %w", err)
	}
	return ParseCRL(b, p.caCert)
}

// ParseCRL parses a PEM CRL and, when ca is not nil, checks that ca signed it.
func ParseCRL(b []byte, ca *x509.Certificate) (*x509.RevocationList, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "X509 CRL" {
		return nil, errors.New("not a PEM CRL (-----BEGIN X509 CRL-----)")
	}
	crl, err := x509.ParseRevocationList(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("failed to parse the CRL: %w", err)
	}
	if ca != nil {
		if err := crl.CheckSignatureFrom(ca); err != nil {
			return nil, fmt.Errorf("the CRL is not signed by the CA: %w", err)
		}
	}
	return crl, nil
}

// CRLPEM returns the current crl.pem.
func (p *PKI) CRLPEM() ([]byte, error) {
	b, err := os.ReadFile(p.CRLPath())
	if err != nil {
		return nil, fmt.Errorf("failed to read the CRL (run `devgate vpn pki crl`): %w", err)
	}
	if _, err := ParseCRL(b, p.caCert); err != nil {
		return nil, err
	}
	return b, nil
}
