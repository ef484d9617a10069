// Package ovpn reads an OpenVPN client profile (.ovpn), such as the one
// ExportClientVpnClientConfiguration returns, and adds a developer's
// certificate and key to it as inline <cert> and <key> blocks (and a <ca>
// block when the profile has none).
//
// It keeps every other line byte for byte, including comments and line
// endings; it replaces `cert`/`key` file directives and existing
// <cert>/<key> blocks so that a profile is never left with two. It does not
// interpret OpenVPN options beyond that, resolve `remote` names, or apply
// the remote-random-hostname workaround.
package ovpn

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// Item is one element of a profile: a line (directive, comment or blank) or
// an inline block such as <ca>…</ca>.
type Item struct {
	Line    string // the whole line without its line ending, when Tag == ""
	Tag     string // inline block name, e.g. "ca"
	Body    string // inline block content between the tag lines, line endings included
	Open    string // the block's opening line as written (e.g. "<ca>")
	OpenEOL string // the opening line's line ending
	Close   string // the block's closing line as written
	EOL     string // "\n", "\r\n" or "" (last line without newline)
}

// Directive is the first word of a directive line ("" for blanks and comments).
func (it Item) Directive() string {
	if it.Tag != "" {
		return ""
	}
	f := strings.Fields(it.Line)
	if len(f) == 0 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], ";") {
		return ""
	}
	return strings.TrimPrefix(f[0], "--")
}

// Profile is a parsed .ovpn file.
type Profile struct{ Items []Item }

// ParseError says where a profile is malformed.
type ParseError struct {
	Line int
	Msg  string
}

func (e *ParseError) Error() string { return fmt.Sprintf("ovpn profile: line %d: %s", e.Line, e.Msg) }

// maxProfile bounds the input (an AWS profile is a few KiB).
const maxProfile = 1 << 20

// Parse splits a profile into lines and inline blocks. It fails on an
// unterminated or mismatched inline block and on NUL bytes.
func Parse(b []byte) (*Profile, error) {
	if len(b) > maxProfile {
		return nil, &ParseError{0, fmt.Sprintf("larger than %d bytes", maxProfile)}
	}
	if bytes.IndexByte(b, 0) >= 0 {
		return nil, &ParseError{0, "contains NUL bytes (not a text profile)"}
	}
	p := &Profile{}
	s := string(b)
	var block *Item
	blockStart := 0
	for ln := 1; len(s) > 0; ln++ {
		line, eol := s, ""
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			line, eol, s = s[:i], "\n", s[i+1:]
			if strings.HasSuffix(line, "\r") {
				line, eol = line[:len(line)-1], "\r\n"
			}
		} else {
			s = ""
		}
		t := strings.TrimSpace(line)
		if block != nil {
			if t == "</"+block.Tag+">" {
				block.Close, block.EOL = line, eol
				p.Items = append(p.Items, *block)
				block = nil
				continue
			}
			if strings.HasPrefix(t, "</") || isOpenTag(t) {
				return nil, &ParseError{ln, fmt.Sprintf("%q inside <%s> (opened on line %d)", t, block.Tag, blockStart)}
			}
			block.Body += line + eol
			continue
		}
		if isOpenTag(t) {
			block = &Item{Tag: t[1 : len(t)-1], Open: line, OpenEOL: eol}
			blockStart = ln
			continue
		}
		if strings.HasPrefix(t, "</") {
			return nil, &ParseError{ln, fmt.Sprintf("%q closes no block", t)}
		}
		p.Items = append(p.Items, Item{Line: line, EOL: eol})
	}
	if block != nil {
		return nil, &ParseError{blockStart, fmt.Sprintf("<%s> is never closed", block.Tag)}
	}
	return p, nil
}

func isOpenTag(t string) bool {
	if len(t) < 3 || t[0] != '<' || t[len(t)-1] != '>' || t[1] == '/' {
		return false
	}
	for _, c := range t[1 : len(t)-1] {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Marshal writes the profile back; Marshal(Parse(b)) == b.
func (p *Profile) Marshal() []byte {
	var b bytes.Buffer
	for _, it := range p.Items {
		if it.Tag == "" {
			b.WriteString(it.Line + it.EOL)
			continue
		}
		b.WriteString(it.Open + it.OpenEOL + it.Body + it.Close + it.EOL)
	}
	return b.Bytes()
}

// Block returns the content of inline block tag, and whether there is one.
func (p *Profile) Block(tag string) (string, bool) {
	for _, it := range p.Items {
		if it.Tag == tag {
			return it.Body, true
		}
	}
	return "", false
}

// Has reports whether a directive is present (e.g. "remote-cert-tls").
func (p *Profile) Has(directive string) bool {
	for _, it := range p.Items {
		if it.Directive() == directive {
			return true
		}
	}
	return false
}

// Credentials are the PEM blocks to add.
type Credentials struct {
	CA   []byte // optional: used only when the profile has no <ca>
	Cert []byte // the client certificate (PEM)
	Key  []byte // its private key (PEM)
}

// Errors of AddCredentials.
var (
	ErrNotClient = errors.New("not an OpenVPN client profile (no `client` or `tls-client` and `remote` line)")
	ErrBadPEM    = errors.New("bad PEM")
)

// AddCredentials returns profile with cred's certificate and key as inline
// blocks at the end, replacing `cert`/`key` directives and old blocks, and
// with a <ca> block from cred.CA when it had none. It checks that the key
// matches the certificate and that the certificate is for client auth.
func AddCredentials(profile []byte, cred Credentials) ([]byte, error) {
	p, err := Parse(profile)
	if err != nil {
		return nil, err
	}
	if !(p.Has("client") || p.Has("tls-client")) || !p.Has("remote") {
		return nil, ErrNotClient
	}
	if err := checkPair(cred.Cert, cred.Key); err != nil {
		return nil, err
	}
	eol := "\n"
	var kept []Item
	for _, it := range p.Items {
		if it.EOL == "\r\n" {
			eol = "\r\n"
		}
		switch {
		case it.Tag == "cert" || it.Tag == "key":
			continue
		case it.Directive() == "cert" || it.Directive() == "key":
			continue
		}
		kept = append(kept, it)
	}
	if n := len(kept); n > 0 && kept[n-1].EOL == "" {
		kept[n-1].EOL = eol
	}
	block := func(tag string, pemBytes []byte) Item {
		body := strings.TrimRight(string(pemBytes), "\r\n")
		body = strings.ReplaceAll(strings.ReplaceAll(body, "\r\n", "\n"), "\n", eol) + eol
		return Item{Tag: tag, Open: "<" + tag + ">", OpenEOL: eol, Close: "</" + tag + ">", Body: body, EOL: eol}
	}
	if _, ok := p.Block("ca"); !ok && !p.Has("ca") {
		if len(cred.CA) == 0 {
			return nil, errors.New("the profile has no <ca> and no CA was given")
		}
		kept = append(kept, block("ca", cred.CA))
	}
	kept = append(kept, block("cert", cred.Cert), block("key", cred.Key))
	return (&Profile{Items: kept}).Marshal(), nil
}

func checkPair(certPEM, keyPEM []byte) error {
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return fmt.Errorf("%w: the certificate is not a PEM CERTIFICATE", ErrBadPEM)
	}
	c, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadPEM, err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil || !strings.HasSuffix(kb.Type, "PRIVATE KEY") || strings.Contains(kb.Type, "ENCRYPTED") {
		return fmt.Errorf("%w: the key is not an unencrypted PEM private key", ErrBadPEM)
	}
	var k any
	switch kb.Type {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(kb.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(kb.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadPEM, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return fmt.Errorf("%w: unsupported key type %T", ErrBadPEM, k)
	}
	if pk, ok := c.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pk.Equal(signer.Public()) {
		return errors.New("the key does not match the certificate")
	}
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageClientAuth {
			return nil
		}
	}
	return errors.New("the certificate has no clientAuth extended key usage (a server certificate?)")
}
