package pki

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// The index file is OpenSSL's (and easy-rsa's) index.txt format, one
// certificate per line, six tab-separated fields:
//
//	status  expiry  revocation[,reason]  serial  kind  subject
//	V       350101000000Z               02      server  /CN=vpn.example.com
//	R       270101000000Z  260101120000Z,keyCompromise  03  client  /CN=alice
//
// status is V (valid) or R (revoked); dates are UTCTime (YYMMDDHHMMSSZ) up to
// 2049 and GeneralizedTime (YYYYMMDDHHMMSSZ) after; the serial is upper-case
// hex; the fifth field, the "file name" that OpenSSL leaves as "unknown",
// holds the certificate's kind. devgate ends the file with a trailer line
//
//	# devgate-index v1 entries=N sha256=<hex of every byte before this line>
//
// so that truncation, hand edits and bit flips are detected. OpenSSL's
// TXT_DB reader skips lines that start with '#'.

// Status is an index entry's status.
type Status string

const (
	StatusValid   Status = "valid"
	StatusRevoked Status = "revoked"
	StatusExpired Status = "expired" // computed: a V entry past its expiry
)

// Kind is what a certificate is for.
type Kind string

const (
	KindServer Kind = "server" // serverAuth: the Client VPN endpoint (ACM)
	KindClient Kind = "client" // clientAuth: one developer
)

// Entry is one line of the index.
type Entry struct {
	Revoked    bool
	Expiry     time.Time
	RevokedAt  time.Time // zero unless Revoked
	Reason     Reason    // meaningful only when Revoked
	Serial     *big.Int
	Kind       Kind
	Name       string // the subject's CN
	reasonText bool   // the reason was written explicitly (round trip)
}

// Status is the entry's status at now.
func (e Entry) Status(now time.Time) Status {
	switch {
	case e.Revoked:
		return StatusRevoked
	case !now.Before(e.Expiry):
		return StatusExpired
	}
	return StatusValid
}

// SerialHex is the serial as the index writes it.
func (e Entry) SerialHex() string { return serialHex(e.Serial) }

func serialHex(s *big.Int) string {
	h := strings.ToUpper(s.Text(16))
	if len(h)%2 == 1 {
		h = "0" + h
	}
	return h
}

// ErrCorruptIndex is wrapped by every error about a malformed or tampered index.
var ErrCorruptIndex = errors.New("corrupt index")

// IndexError says where the index is bad.
type IndexError struct {
	Line int // 1-based; 0 for the file as a whole
	Msg  string
}

func (e *IndexError) Error() string {
	if e.Line == 0 {
		return "corrupt index: " + e.Msg
	}
	return fmt.Sprintf("corrupt index: line %d: %s", e.Line, e.Msg)
}

func (e *IndexError) Unwrap() error { return ErrCorruptIndex }

const trailerPrefix = "# devgate-index v1 "

// maxSerialHexLen bounds a serial (RFC 5280: at most 20 octets).
const maxSerialHexLen = 40

// ParseIndex parses an index file written by MarshalIndex. It checks the
// trailer's checksum and entry count, every field's syntax, and that serials
// are unique and at most one valid entry exists per name.
func ParseIndex(b []byte) ([]Entry, error) {
	if len(b) == 0 {
		return nil, &IndexError{Msg: "empty file (no trailer)"}
	}
	if b[len(b)-1] != '\n' {
		return nil, &IndexError{Msg: "truncated: the file does not end with a newline"}
	}
	body := b[:len(b)-1]
	cut := bytes.LastIndexByte(body, '\n') + 1
	trailer, data := string(body[cut:]), b[:cut]
	if !strings.HasPrefix(trailer, trailerPrefix) {
		return nil, &IndexError{Msg: "missing trailer line (truncated or edited by hand)"}
	}
	var n int
	var sum string
	if _, err := fmt.Sscanf(strings.TrimPrefix(trailer, trailerPrefix), "entries=%d sha256=%s", &n, &sum); err != nil ||
		trailer != fmt.Sprintf("%sentries=%d sha256=%s", trailerPrefix, n, sum) {
		return nil, &IndexError{Msg: "malformed trailer line"}
	}
	got := sha256.Sum256(data)
	if hex.EncodeToString(got[:]) != sum {
		return nil, &IndexError{Msg: "checksum mismatch (truncated or edited by hand)"}
	}
	var out []Entry
	seen := map[string]int{}
	validName := map[string]int{}
	lines := strings.Split(string(data), "\n")
	lines = lines[:len(lines)-1] // data ends with '\n' or is empty
	for i, line := range lines {
		ln := i + 1
		if strings.HasPrefix(line, "#") {
			return nil, &IndexError{ln, "unexpected comment line"}
		}
		e, err := parseEntry(line)
		if err != nil {
			return nil, &IndexError{ln, err.Error()}
		}
		h := e.SerialHex()
		if prev, dup := seen[h]; dup {
			return nil, &IndexError{ln, fmt.Sprintf("serial %s also on line %d", h, prev)}
		}
		seen[h] = ln
		if !e.Revoked {
			if prev, dup := validName[e.Name]; dup {
				return nil, &IndexError{ln, fmt.Sprintf("a second unrevoked certificate for %q (line %d)", e.Name, prev)}
			}
			validName[e.Name] = ln
		}
		out = append(out, e)
	}
	if len(out) != n {
		return nil, &IndexError{Msg: fmt.Sprintf("trailer says %d entries, found %d", n, len(out))}
	}
	return out, nil
}

func parseEntry(line string) (Entry, error) {
	f := strings.Split(line, "\t")
	if len(f) != 6 {
		return Entry{}, fmt.Errorf("%d fields, want 6", len(f))
	}
	var e Entry
	switch f[0] {
	case "V":
		if f[2] != "" {
			return e, errors.New("valid entry with a revocation date")
		}
	case "R":
		e.Revoked = true
		date, reason, hasReason := strings.Cut(f[2], ",")
		t, err := parseIndexTime(date)
		if err != nil {
			return e, fmt.Errorf("revocation date: %w", err)
		}
		e.RevokedAt = t
		if hasReason {
			r, err := ParseReason(reason)
			if err != nil {
				return e, err
			}
			if reason != r.String() {
				return e, fmt.Errorf("revocation reason %q is not spelt %q", reason, r.String())
			}
			e.Reason, e.reasonText = r, true
		}
	default:
		return e, fmt.Errorf("status %q, want V or R", f[0])
	}
	t, err := parseIndexTime(f[1])
	if err != nil {
		return e, fmt.Errorf("expiry: %w", err)
	}
	e.Expiry = t
	if len(f[3]) == 0 || len(f[3]) > maxSerialHexLen || len(f[3])%2 == 1 {
		return e, fmt.Errorf("serial %q: want an even number of hex digits, at most %d", f[3], maxSerialHexLen)
	}
	s, ok := new(big.Int).SetString(f[3], 16)
	if !ok || s.Sign() <= 0 || serialHex(s) != f[3] {
		return e, fmt.Errorf("serial %q: want positive upper-case hex", f[3])
	}
	e.Serial = s
	switch Kind(f[4]) {
	case KindServer, KindClient:
		e.Kind = Kind(f[4])
	default:
		return e, fmt.Errorf("kind %q, want server or client", f[4])
	}
	name, ok := strings.CutPrefix(f[5], "/CN=")
	if !ok {
		return e, fmt.Errorf("subject %q, want /CN=<name>", f[5])
	}
	if err := CheckName(name); err != nil {
		return e, err
	}
	e.Name = name
	return e, nil
}

// MarshalIndex writes entries in the index format, trailer included.
func MarshalIndex(entries []Entry) []byte {
	var b bytes.Buffer
	for _, e := range entries {
		status, rev := "V", ""
		if e.Revoked {
			status, rev = "R", formatIndexTime(e.RevokedAt)
			if e.Reason != ReasonUnspecified || e.reasonText {
				rev += "," + e.Reason.String()
			}
		}
		fmt.Fprintf(&b, "%s\t%s\t%s\t%s\t%s\t/CN=%s\n", status, formatIndexTime(e.Expiry), rev, e.SerialHex(), e.Kind, e.Name)
	}
	sum := sha256.Sum256(b.Bytes())
	fmt.Fprintf(&b, "%sentries=%d sha256=%s\n", trailerPrefix, len(entries), hex.EncodeToString(sum[:]))
	return b.Bytes()
}

func formatIndexTime(t time.Time) string {
	t = t.UTC()
	if t.Year() >= 1950 && t.Year() < 2050 {
		return t.Format("060102150405Z")
	}
	return t.Format("20060102150405Z")
}

func parseIndexTime(s string) (time.Time, error) {
	var layout string
	switch len(s) {
	case 13:
		layout = "060102150405Z"
	case 15:
		layout = "20060102150405Z"
	default:
		return time.Time{}, fmt.Errorf("%q is not YYMMDDHHMMSSZ or YYYYMMDDHHMMSSZ", s)
	}
	t, err := time.Parse(layout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not YYMMDDHHMMSSZ or YYYYMMDDHHMMSSZ", s)
	}
	if len(s) == 13 && t.Year() >= 2050 {
		t = t.AddDate(-100, 0, 0) // UTCTime: 50–99 mean 1950–1999 (RFC 5280)
	}
	if len(s) == 15 && t.Year() >= 1950 && t.Year() < 2050 {
		return time.Time{}, fmt.Errorf("%q: years 1950–2049 are written as UTCTime", s)
	}
	return t, nil
}

// Reason is a CRL reason code (RFC 5280 §5.3.1).
type Reason int

const (
	ReasonUnspecified          Reason = 0
	ReasonKeyCompromise        Reason = 1
	ReasonCACompromise         Reason = 2
	ReasonAffiliationChanged   Reason = 3
	ReasonSuperseded           Reason = 4
	ReasonCessationOfOperation Reason = 5
	ReasonCertificateHold      Reason = 6
)

// reasonNames are OpenSSL's spellings (crypto/x509/v3_crld.c, apps/ca.c).
var reasonNames = []string{"unspecified", "keyCompromise", "CACompromise", "affiliationChanged",
	"superseded", "cessationOfOperation", "certificateHold"}

func (r Reason) String() string {
	if r >= 0 && int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", int(r))
}

// ReasonNames lists the accepted reasons.
func ReasonNames() []string { return append([]string(nil), reasonNames...) }

// ParseReason parses a reason name (case-insensitive).
func ParseReason(s string) (Reason, error) {
	for i, n := range reasonNames {
		if strings.EqualFold(s, n) {
			return Reason(i), nil
		}
	}
	return 0, fmt.Errorf("unknown revocation reason %q (valid: %s)", s, strings.Join(reasonNames, ", "))
}
