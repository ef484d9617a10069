package labvpn

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/acm/types"
	"github.com/devgate/devgate/internal/lab/labapi"
)

type acmCert struct {
	arn        string
	cert       *x509.Certificate
	certPEM    []byte
	chain      []*x509.Certificate
	chainPEM   []byte
	importedAt time.Time
	created    time.Time
	imports    int
}

var arnRe = regexp.MustCompile(`^arn:aws:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$`)

func acmValidation(format string, args ...any) error {
	return labapi.Errorf(400, "ValidationException", format, args...)
}

// importCertificate answers ImportCertificate like ACM: blobs arrive
// base64-encoded in JSON (encoding/json decodes them into []byte).
func (s *Service) importCertificate(ctx context.Context, body []byte) (any, error) {
	if err := s.authorize(ctx, "acm:ImportCertificate"); err != nil {
		return nil, err
	}
	var in struct {
		CertificateArn   string
		Certificate      []byte
		PrivateKey       []byte
		CertificateChain []byte
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, labapi.Errorf(400, "SerializationException", "%v", err)
	}
	if len(in.Certificate) == 0 || len(in.PrivateKey) == 0 {
		return nil, acmValidation("1 validation error detected: Value null at 'certificate' or 'privateKey' failed to satisfy constraint: Member must not be null")
	}
	cert, certPEM, err := oneCert(in.Certificate)
	if err != nil {
		return nil, err
	}
	key, err := parseKey(in.PrivateKey)
	if err != nil {
		return nil, err
	}
	if pk, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pk.Equal(key.Public()) {
		return nil, acmValidation("The private key does not match the public key in the certificate.")
	}
	if _, err := keyAlgorithm(cert); err != nil {
		return nil, err
	}
	now := s.opts.Now()
	if now.After(cert.NotAfter) {
		return nil, acmValidation("The certificate has expired.")
	}
	if now.Before(cert.NotBefore) {
		return nil, acmValidation("The certificate is not yet valid.")
	}
	var chain []*x509.Certificate
	rest := in.CertificateChain
	for len(rest) > 0 {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, acmValidation("The certificate chain contains a %s block; only certificates are allowed.", blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, acmValidation("Could not parse the certificate chain: %v", err)
		}
		chain = append(chain, c)
	}
	if len(in.CertificateChain) > 0 && len(chain) == 0 {
		return nil, acmValidation("The certificate chain is not PEM-encoded.")
	}
	if err := verifyChain(cert, chain, now); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &acmCert{cert: cert, certPEM: certPEM, chain: chain, chainPEM: in.CertificateChain, importedAt: now}
	if in.CertificateArn != "" {
		if !arnRe.MatchString(in.CertificateArn) {
			return nil, labapi.Errorf(400, "InvalidArnException", "String '%s' is not a valid ARN.", in.CertificateArn)
		}
		old, ok := s.certs[in.CertificateArn]
		if !ok {
			return nil, labapi.Errorf(400, "ResourceNotFoundException", "Could not find certificate %s.", in.CertificateArn)
		}
		c.arn, c.created, c.imports = old.arn, old.created, old.imports+1
	} else {
		c.arn = fmt.Sprintf("arn:aws:acm:%s:%s:certificate/%s-%s-%s-%s-%s", s.opts.Region, s.opts.Account,
			randomHex(8), randomHex(4), randomHex(4), randomHex(4), randomHex(12))
		c.created, c.imports = now, 1
	}
	s.certs[c.arn] = c
	return map[string]string{"CertificateArn": c.arn}, nil
}

func oneCert(b []byte) (*x509.Certificate, []byte, error) {
	blk, rest := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, nil, acmValidation("The certificate is not PEM-encoded.")
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, nil, acmValidation("The certificate field contains more than one certificate. You can specify only one certificate in this field.")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, nil, acmValidation("Could not parse the certificate: %v", err)
	}
	return c, pem.EncodeToMemory(blk), nil
}

func parseKey(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, acmValidation("The private key is not PEM-encoded.")
	}
	if strings.Contains(blk.Type, "ENCRYPTED") || blk.Headers["Proc-Type"] != "" {
		return nil, acmValidation("The private key is encrypted. Import an unencrypted private key.")
	}
	var k any
	var err error
	switch blk.Type {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	default:
		return nil, acmValidation("Unsupported private key type %s.", blk.Type)
	}
	if err != nil {
		return nil, acmValidation("Could not parse the private key: %v", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, acmValidation("Unsupported private key type %T.", k)
	}
	return s, nil
}

// keyAlgorithm is ACM's name for the certificate's key; ACM imports RSA
// 1024–4096 and EC P-256/384/521 only.
func keyAlgorithm(c *x509.Certificate) (types.KeyAlgorithm, error) {
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 1024:
			return types.KeyAlgorithmRsa1024, nil
		case 2048:
			return types.KeyAlgorithmRsa2048, nil
		case 3072:
			return types.KeyAlgorithmRsa3072, nil
		case 4096:
			return types.KeyAlgorithmRsa4096, nil
		}
		return "", acmValidation("The certificate uses an unsupported key size: RSA %d.", k.N.BitLen())
	case *ecdsa.PublicKey:
		switch k.Curve.Params().BitSize {
		case 256:
			return types.KeyAlgorithmEcPrime256v1, nil
		case 384:
			return types.KeyAlgorithmEcSecp384r1, nil
		case 521:
			return types.KeyAlgorithmEcSecp521r1, nil
		}
	}
	return "", acmValidation("The certificate uses an unsupported key algorithm.")
}

func verifyChain(cert *x509.Certificate, chain []*x509.Certificate, now time.Time) error {
	if len(chain) == 0 {
		return nil // ACM accepts a certificate without a chain
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	for i, c := range chain {
		if i == len(chain)-1 {
			roots.AddCert(c)
		} else {
			inter.AddCert(c)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return acmValidation("Could not validate the certificate with the certificate chain.")
	}
	return nil
}

func (s *Service) lookupCert(arn string) (*acmCert, error) {
	if !arnRe.MatchString(arn) {
		return nil, labapi.Errorf(400, "InvalidArnException", "String '%s' is not a valid ARN.", arn)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.certs[arn]
	if !ok {
		return nil, labapi.Errorf(400, "ResourceNotFoundException", "Could not find certificate %s.", arn)
	}
	return c, nil
}

// domainName is what ACM reports as DomainName: the subject CN, else the
// first DNS SAN, else nothing.
func domainName(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	if len(c.DNSNames) > 0 {
		return c.DNSNames[0]
	}
	return ""
}

var ekuNames = map[x509.ExtKeyUsage][2]string{
	x509.ExtKeyUsageServerAuth: {"TLS_WEB_SERVER_AUTHENTICATION", "1.3.6.1.5.5.7.3.1"},
	x509.ExtKeyUsageClientAuth: {"TLS_WEB_CLIENT_AUTHENTICATION", "1.3.6.1.5.5.7.3.2"},
}

var kuNames = []struct {
	ku   x509.KeyUsage
	name string
}{
	{x509.KeyUsageDigitalSignature, "DIGITAL_SIGNATURE"}, {x509.KeyUsageContentCommitment, "NON_REPUDIATION"},
	{x509.KeyUsageKeyEncipherment, "KEY_ENCIPHERMENT"}, {x509.KeyUsageDataEncipherment, "DATA_ENCIPHERMENT"},
	{x509.KeyUsageKeyAgreement, "KEY_AGREEMENT"}, {x509.KeyUsageCertSign, "CERTIFICATE_SIGNING"},
	{x509.KeyUsageCRLSign, "CRL_SIGNING"},
}

func (s *Service) describeCertificate(ctx context.Context, body []byte) (any, error) {
	if err := s.authorize(ctx, "acm:DescribeCertificate"); err != nil {
		return nil, err
	}
	var in struct{ CertificateArn string }
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, labapi.Errorf(400, "SerializationException", "%v", err)
	}
	c, err := s.lookupCert(in.CertificateArn)
	if err != nil {
		return nil, err
	}
	alg, _ := keyAlgorithm(c.cert)
	d := map[string]any{
		"CertificateArn":          c.arn,
		"Serial":                  colonHex(c.cert.SerialNumber.Bytes()),
		"Subject":                 c.cert.Subject.String(),
		"Issuer":                  c.cert.Issuer.CommonName,
		"ImportedAt":              epoch(c.importedAt),
		"CreatedAt":               epoch(c.created),
		"NotBefore":               epoch(c.cert.NotBefore),
		"NotAfter":                epoch(c.cert.NotAfter),
		"KeyAlgorithm":            string(alg),
		"SignatureAlgorithm":      strings.ToUpper(strings.ReplaceAll(c.cert.SignatureAlgorithm.String(), "-", "WITH")),
		"Status":                  "ISSUED",
		"Type":                    "IMPORTED",
		"SubjectAlternativeNames": c.cert.DNSNames,
		"InUseBy":                 s.inUseBy(c.arn),
		"RenewalEligibility":      "INELIGIBLE",
	}
	if dn := domainName(c.cert); dn != "" {
		d["DomainName"] = dn
	}
	var ekus []map[string]string
	for _, u := range c.cert.ExtKeyUsage {
		if n, ok := ekuNames[u]; ok {
			ekus = append(ekus, map[string]string{"Name": n[0], "OID": n[1]})
		}
	}
	d["ExtendedKeyUsages"] = ekus
	var kus []map[string]string
	for _, k := range kuNames {
		if c.cert.KeyUsage&k.ku != 0 {
			kus = append(kus, map[string]string{"Name": k.name})
		}
	}
	d["KeyUsages"] = kus
	return map[string]any{"Certificate": d}, nil
}

func (s *Service) inUseBy(arn string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []string{}
	for id, e := range s.endpoints {
		if e.serverARN == arn || e.clientRootARN == arn {
			out = append(out, fmt.Sprintf("arn:aws:ec2:%s:%s:client-vpn-endpoint/%s", s.opts.Region, s.opts.Account, id))
		}
	}
	return out
}

func colonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02x", x)
	}
	return strings.Join(parts, ":")
}

func (s *Service) getCertificate(ctx context.Context, body []byte) (any, error) {
	if err := s.authorize(ctx, "acm:GetCertificate"); err != nil {
		return nil, err
	}
	var in struct{ CertificateArn string }
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, labapi.Errorf(400, "SerializationException", "%v", err)
	}
	c, err := s.lookupCert(in.CertificateArn)
	if err != nil {
		return nil, err
	}
	out := map[string]string{"Certificate": string(c.certPEM)}
	if len(c.chainPEM) > 0 {
		out["CertificateChain"] = string(c.chainPEM)
	}
	return out, nil
}

// Imports is how many times the certificate with arn was imported (1 + re-imports).
func (s *Service) Imports(arn string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.certs[arn]; ok {
		return c.imports
	}
	return 0
}

// Certificates lists the ARNs of the imported certificates.
func (s *Service) Certificates() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for a := range s.certs {
		out = append(out, a)
	}
	return out
}
