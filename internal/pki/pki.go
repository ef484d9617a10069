// Package pki is the certificate authority for AWS Client VPN mutual
// authentication: one CA, one server certificate for the endpoint, one client
// certificate per developer, revocation and the CRL.
//
// What it does:
//   - RSA-2048 keys and SHA-256 signatures throughout (Client VPN accepts only
//     1024- and 2048-bit RSA); the server certificate carries its DNS name in
//     the SAN and the serverAuth EKU, clients the clientAuth EKU and a CN.
//   - The CA key is encrypted at rest with an age scrypt passphrase recipient.
//     It is encrypted in memory and only the ciphertext ever reaches the disk,
//     never a clear temporary file. Wrong passphrases are reported as
//     ErrWrongPassphrase before anything is changed.
//   - Files are 0600 in 0700 directories and replaced atomically (temporary
//     file, fsync, rename).
//   - An OpenSSL/easy-rsa style index (see index.go) with a checksum trailer,
//     cross-checked against the archived certificates on every open, so a
//     corrupted or truncated index is reported as ErrCorruptIndex.
//   - A file lock (flock on D/.lock) around serial allocation and every write
//     of the index, serial, CRL number and CRL, so concurrent issues in
//     different processes get distinct serials.
//   - CRLs with an incrementing CRL number and a nextUpdate.
//
// What it does not do: talk to AWS (package cli does the ACM and EC2 calls),
// keep client or server private keys encrypted (ACM import and the .ovpn
// profile need them in the clear; they are 0600), OCSP, intermediate CAs, or
// key types other than RSA-2048.
//
// Layout of a PKI directory D:
//
//	ca.crt              the CA certificate (PEM)
//	ca.key.age          the CA private key (PKCS#8 PEM inside age, scrypt)
//	index.txt           every certificate issued, OpenSSL format + trailer
//	serial              the next serial (hex), like OpenSSL's
//	crlnumber           the next CRL number (hex), like OpenSSL's
//	crl.pem             the latest CRL
//	certs/SERIAL.pem    every certificate ever issued, by serial
//	issued/NAME.crt     the current certificate of NAME
//	private/NAME.key    the current private key of NAME (PKCS#8 PEM, clear)
//	.lock               the lock file
package pki

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"filippo.io/age"
)

// Errors callers can test for with errors.Is.
var (
	ErrWrongPassphrase = errors.New("wrong passphrase for the CA key")
	// ErrCorruptKey: ca.key.age does not decrypt to the CA's key although the
	// passphrase opened it, or is cut short (a full disk, a bad copy).
	ErrCorruptKey     = errors.New("the CA key file is damaged")
	ErrLocked         = errors.New("the CA key is locked (no passphrase given)")
	ErrExists         = errors.New("already exists")
	ErrNotFound       = errors.New("not found")
	ErrNotInitialized = errors.New("not a devgate PKI directory")
	ErrBadName        = errors.New("bad certificate name")
)

// Default lifetimes, in days (easy-rsa's defaults: CA 3650, certificates 825, CRL 180).
const (
	DefaultCADays   = 3650
	DefaultCertDays = 825
	DefaultCRLDays  = 180
	// MinPassphraseLen is the shortest CA passphrase Init accepts.
	MinPassphraseLen = 8
)

// KeyBits is the RSA key size of every key (Client VPN allows 1024 and 2048).
const KeyBits = 2048

// Options tune a PKI. The zero value is production behaviour.
type Options struct {
	// Now is the clock; default time.Now.
	Now func() time.Time
	// ScryptWorkFactor is log2 of the scrypt cost used when the CA key is
	// (re-)encrypted; 0 means age's default (18, about 1 s). Tests lower it.
	ScryptWorkFactor int
	// Rand is the randomness source for keys and signatures; default crypto/rand.
	Rand io.Reader
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o Options) rand() io.Reader {
	if o.Rand != nil {
		return o.Rand
	}
	return rand.Reader
}

// PKI is an opened PKI directory.
type PKI struct {
	dir    string
	opts   Options
	caCert *x509.Certificate
	caPEM  []byte
	caKey  crypto.Signer // nil until Unlock
}

const (
	fileCACert    = "ca.crt"
	fileCAKey     = "ca.key.age"
	fileIndex     = "index.txt"
	fileSerial    = "serial"
	fileCRLNumber = "crlnumber"
	fileCRL       = "crl.pem"
	fileLock      = ".lock"
	dirCerts      = "certs"
	dirIssued     = "issued"
	dirPrivate    = "private"
)

var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// CheckName reports whether name can be a certificate name (it becomes the CN
// and a file name): 1–64 of letters, digits, '.', '_', '@', '-', not starting
// with a punctuation character.
func CheckName(name string) error {
	if !nameRe.MatchString(name) {
		return fmt.Errorf("%w %q: use 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit", ErrBadName, name)
	}
	return nil
}

var dnsLabelRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// CheckServerName reports whether name is a usable domain name for the
// server certificate: ACM and Client VPN need a domain (with a dot).
func CheckServerName(name string) error {
	if len(name) > 253 || !strings.Contains(name, ".") {
		return fmt.Errorf("%w %q: the server name must be a domain name such as vpn.example.com (Client VPN refuses a certificate without a domain)", ErrBadName, name)
	}
	for _, l := range strings.Split(name, ".") {
		if !dnsLabelRe.MatchString(l) {
			return fmt.Errorf("%w %q: label %q is not a lower-case DNS label", ErrBadName, name, l)
		}
	}
	return nil
}

// InitParams are the inputs of Init.
type InitParams struct {
	ServerName string // DNS name of the server certificate, e.g. vpn.example.com
	CADays     int    // default DefaultCADays
	ServerDays int    // default DefaultCertDays
	CRLDays    int    // default DefaultCRLDays
}

// Init creates a PKI in dir: the CA (its key encrypted with passphrase), the
// server certificate, the index and a first (empty) CRL. dir must not exist
// or be empty.
func Init(dir string, p InitParams, passphrase string, opts Options) (*PKI, error) {
	if err := CheckServerName(p.ServerName); err != nil {
		return nil, err
	}
	if len(passphrase) < MinPassphraseLen {
		return nil, fmt.Errorf("the CA passphrase must have at least %d characters", MinPassphraseLen)
	}
	p.CADays = orDefault(p.CADays, DefaultCADays)
	p.ServerDays = orDefault(p.ServerDays, DefaultCertDays)
	p.CRLDays = orDefault(p.CRLDays, DefaultCRLDays)
	if p.CADays < 1 || p.ServerDays < 1 || p.CRLDays < 1 {
		return nil, errors.New("days must be at least 1")
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("%s: %w and is not empty", dir, ErrExists)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("failed to read %s: %w", dir, err)
	}
	for _, d := range []string{dir, filepath.Join(dir, dirCerts), filepath.Join(dir, dirIssued), filepath.Join(dir, dirPrivate)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("failed to create %s: %w", d, err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return nil, fmt.Errorf("failed to chmod %s: %w", d, err)
		}
	}
	unlock, err := lockDir(dir, true)
	if err != nil {
		return nil, err
	}
	defer unlock()

	now := opts.now()
	caKey, err := rsa.GenerateKey(opts.rand(), KeyBits)
	if err != nil {
		return nil, fmt.Errorf("failed to generate the CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkixName(p.ServerName + " CA"),
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.AddDate(0, 0, p.CADays),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(opts.rand(), tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("failed to create the CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	enc, err := encryptKey(caKey, passphrase, opts.ScryptWorkFactor)
	if err != nil {
		return nil, err
	}
	pk := &PKI{dir: dir, opts: opts, caCert: caCert, caPEM: pemCert(der), caKey: caKey}
	if err := writeFile(pk.path(fileCAKey), enc); err != nil {
		return nil, err
	}
	if err := writeFile(pk.path(fileCACert), pk.caPEM); err != nil {
		return nil, err
	}
	if err := writeFile(pk.path(fileIndex), MarshalIndex(nil)); err != nil {
		return nil, err
	}
	if err := writeFile(pk.path(fileSerial), []byte("02\n")); err != nil {
		return nil, err
	}
	if err := writeFile(pk.path(fileCRLNumber), []byte("01\n")); err != nil {
		return nil, err
	}
	if _, err := pk.issueLocked(p.ServerName, KindServer, p.ServerDays, false); err != nil {
		return nil, err
	}
	if _, err := pk.crlLocked(p.CRLDays); err != nil {
		return nil, err
	}
	return pk, nil
}

func orDefault(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

// Open opens the PKI in dir and checks its index against the archived
// certificates. The CA key stays locked; call Unlock before issuing,
// revoking or signing a CRL.
func Open(dir string, opts Options) (*PKI, error) {
	b, err := os.ReadFile(filepath.Join(dir, fileCACert))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w (run `devgate vpn pki init` first)", dir, ErrNotInitialized)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read the CA certificate: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: %w: ca.crt is not a PEM certificate", dir, ErrCorruptIndex)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: ca.crt: %v", dir, ErrCorruptIndex, err)
	}
	return &PKI{dir: dir, opts: opts, caCert: c, caPEM: b}, nil
}

// Unlock decrypts the CA key with passphrase and checks that it matches the
// CA certificate. A wrong passphrase returns an error wrapping ErrWrongPassphrase.
func (p *PKI) Unlock(passphrase string) error {
	b, err := os.ReadFile(p.path(fileCAKey))
	if err != nil {
		return fmt.Errorf("failed to read the CA key: %w", err)
	}
	id, err := age.NewScryptIdentity(passphrase)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrWrongPassphrase, err)
	}
	r, err := age.Decrypt(bytes.NewReader(b), id)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) || errors.Is(err, age.ErrIncorrectIdentity) {
			return ErrWrongPassphrase
		}
		return fmt.Errorf("%s: %w: %v", p.path(fileCAKey), ErrCorruptKey, err)
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("%s: %w: %v", p.path(fileCAKey), ErrCorruptKey, err)
	}
	blk, _ := pem.Decode(plain)
	clear(plain)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return fmt.Errorf("%s: %w: the decrypted key is not a PKCS#8 PEM key", p.path(fileCAKey), ErrCorruptKey)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	clear(blk.Bytes)
	if err != nil {
		return fmt.Errorf("%s: %w: %v", p.path(fileCAKey), ErrCorruptKey, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok || !publicKeyEqual(s.Public(), p.caCert.PublicKey) {
		return errors.New("the CA key does not match ca.crt")
	}
	p.caKey = s
	return nil
}

// ChangePassphrase re-encrypts the CA key with a new passphrase (Unlock first).
func (p *PKI) ChangePassphrase(newPassphrase string) error {
	if p.caKey == nil {
		return ErrLocked
	}
	if len(newPassphrase) < MinPassphraseLen {
		return fmt.Errorf("the CA passphrase must have at least %d characters", MinPassphraseLen)
	}
	unlock, err := lockDir(p.dir, true)
	if err != nil {
		return err
	}
	defer unlock()
	enc, err := encryptKey(p.caKey, newPassphrase, p.opts.ScryptWorkFactor)
	if err != nil {
		return err
	}
	return writeFile(p.path(fileCAKey), enc)
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}

// encryptKey returns the age ciphertext of key's PKCS#8 PEM. The clear PEM
// exists only in memory and is zeroed afterwards.
func encryptKey(key crypto.Signer, passphrase string, workFactor int) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	plain := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	clear(der)
	defer clear(plain)
	rcp, err := age.NewScryptRecipient(passphrase)
	if err != nil {
		return nil, err
	}
	if workFactor > 0 {
		rcp.SetWorkFactor(workFactor)
	}
	var out bytes.Buffer
	w, err := age.Encrypt(&out, rcp)
	if err != nil {
		return nil, fmt.Errorf("failed to encrypt the CA key: %w", err)
	}
	if _, err := w.Write(plain); err != nil {
		return nil, fmt.Errorf("failed to encrypt the CA key: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("failed to encrypt the CA key: %w", err)
	}
	return out.Bytes(), nil
}

// Dir is the PKI's directory.
func (p *PKI) Dir() string { return p.dir }

// CACert is the CA certificate.
func (p *PKI) CACert() *x509.Certificate { return p.caCert }

// CAPEM is the CA certificate in PEM.
func (p *PKI) CAPEM() []byte { return append([]byte(nil), p.caPEM...) }

// Paths of the files of one name.
func (p *PKI) CertPath(name string) string { return filepath.Join(p.dir, dirIssued, name+".crt") }
func (p *PKI) KeyPath(name string) string  { return filepath.Join(p.dir, dirPrivate, name+".key") }
func (p *PKI) CRLPath() string             { return p.path(fileCRL) }
func (p *PKI) CACertPath() string          { return p.path(fileCACert) }

func (p *PKI) path(name string) string { return filepath.Join(p.dir, name) }

// Bundle is the current certificate and key of one name, in PEM.
type Bundle struct {
	Entry   Entry
	Cert    *x509.Certificate
	CertPEM []byte
	KeyPEM  []byte
}

// Current returns the current (newest unrevoked) certificate and key of
// name, whatever its expiry.
func (p *PKI) Current(name string) (*Bundle, error) {
	unlock, err := lockDir(p.dir, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	entries, err := p.readIndex()
	if err != nil {
		return nil, err
	}
	var cur *Entry
	for i := range entries {
		if entries[i].Name == name && !entries[i].Revoked {
			cur = &entries[i]
		}
	}
	if cur == nil {
		return nil, fmt.Errorf("no certificate named %q (%w; issue it with `devgate vpn pki issue %s`)", name, ErrNotFound, name)
	}
	certPEM, err := os.ReadFile(p.CertPath(name))
	if err != nil {
		return nil, fmt.Errorf("failed to read the certificate of %q: %w", name, err)
	}
	keyPEM, err := os.ReadFile(p.KeyPath(name))
	if err != nil {
		return nil, fmt.Errorf("failed to read the key of %q: %w", name, err)
	}
	c, err := parseCertPEM(certPEM)
	if err != nil || c.SerialNumber.Cmp(cur.Serial) != 0 {
		return nil, &IndexError{Msg: fmt.Sprintf("issued/%s.crt is not serial %s from the index", name, cur.SerialHex())}
	}
	return &Bundle{Entry: *cur, Cert: c, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

func parseCertPEM(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate")
	}
	return x509.ParseCertificate(blk.Bytes)
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// auxNames are the files besides the PKI proper that devgate keeps in the
// directory (aws.json: the ACM ARNs per region, so re-imports keep them).
var auxNames = map[string]bool{"aws.json": true}

// ReadAux reads an auxiliary file; a missing file is (nil, nil).
func (p *PKI) ReadAux(name string) ([]byte, error) {
	if !auxNames[name] {
		return nil, fmt.Errorf("pki: %q is not an auxiliary file", name)
	}
	b, err := os.ReadFile(p.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// WriteAux replaces an auxiliary file atomically (0600), under the lock.
func (p *PKI) WriteAux(name string, data []byte) error {
	if !auxNames[name] {
		return fmt.Errorf("pki: %q is not an auxiliary file", name)
	}
	unlock, err := lockDir(p.dir, true)
	if err != nil {
		return err
	}
	defer unlock()
	return writeFile(p.path(name), data)
}
