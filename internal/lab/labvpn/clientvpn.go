package labvpn

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/devgate/devgate/internal/lab/labapi"
)

const ec2NS = "http://ec2.amazonaws.com/doc/2016-11-15/"

// maxCRLEntries is Client VPN's (non-adjustable) limit.
const maxCRLEntries = 20000

type endpoint struct {
	id            string
	dnsName       string
	port          int
	protocol      string
	serverARN     string
	clientRootARN string
	crlPEM        string
	crlImports    int
}

// EndpointSpec describes a Client VPN endpoint for AddEndpoint.
type EndpointSpec struct {
	ID                            string // default: a new cvpn-endpoint-… id
	ServerCertificateArn          string // required, an imported ACM certificate
	ClientRootCertificateChainArn string // default: ServerCertificateArn
	Port                          int    // default 443
	Protocol                      string // default udp
}

var endpointIDRe = regexp.MustCompile(`^cvpn-endpoint-[0-9a-f]{17}$`)

// AddEndpoint creates a Client VPN endpoint with mutual authentication, as
// CreateClientVpnEndpoint would, and returns its id. Like AWS it refuses a
// server certificate without a domain name.
func (s *Service) AddEndpoint(spec EndpointSpec) (string, error) {
	if spec.ID == "" {
		spec.ID = "cvpn-endpoint-" + randomHex(17)
	}
	if !endpointIDRe.MatchString(spec.ID) {
		return "", fmt.Errorf("labvpn: endpoint id %q is not cvpn-endpoint- and 17 hex digits", spec.ID)
	}
	if spec.ClientRootCertificateChainArn == "" {
		spec.ClientRootCertificateChainArn = spec.ServerCertificateArn
	}
	srv, err := s.lookupCert(spec.ServerCertificateArn)
	if err != nil {
		return "", err
	}
	if domainName(srv.cert) == "" {
		return "", labapi.Errorf(400, "InvalidParameterValue", "Certificate %s does not have a domain", spec.ServerCertificateArn)
	}
	if _, err := s.lookupCert(spec.ClientRootCertificateChainArn); err != nil {
		return "", err
	}
	if spec.Port == 0 {
		spec.Port = 443
	}
	if spec.Protocol == "" {
		spec.Protocol = "udp"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endpoints[spec.ID] = &endpoint{
		id: spec.ID, serverARN: spec.ServerCertificateArn, clientRootARN: spec.ClientRootCertificateChainArn,
		dnsName: fmt.Sprintf("%s.prod.clientvpn.%s.amazonaws.com", spec.ID, s.opts.Region), port: spec.Port, protocol: spec.Protocol,
	}
	return spec.ID, nil
}

func (s *Service) endpoint(form url.Values) (*endpoint, error) {
	id := form.Get("ClientVpnEndpointId")
	if id == "" {
		return nil, labapi.Errorf(400, "MissingParameter", "The request must contain the parameter ClientVpnEndpointId")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.endpoints[id]
	if !ok {
		if !endpointIDRe.MatchString(id) {
			return nil, labapi.Errorf(400, "InvalidClientVpnEndpointId.Malformed", "Invalid id: \"%s\"", id)
		}
		return nil, labapi.Errorf(400, "InvalidClientVpnEndpointId.NotFound", "The Client VPN endpoint ID '%s' does not exist", id)
	}
	return e, nil
}

type exportConfigResponse struct {
	XMLName             xml.Name `xml:"ExportClientVpnClientConfigurationResponse"`
	Xmlns               string   `xml:"xmlns,attr"`
	RequestID           string   `xml:"requestId"`
	ClientConfiguration string   `xml:"clientConfiguration"`
}

// exportClientConfiguration returns the .ovpn AWS exports: the sample in
// the Client VPN administrator guide, with the server certificate's chain
// (as imported into ACM) in <ca> and no <cert>/<key>.
func (s *Service) exportClientConfiguration(ctx context.Context, form url.Values) (any, error) {
	if err := s.authorize(ctx, "ec2:ExportClientVpnClientConfiguration"); err != nil {
		return nil, err
	}
	e, err := s.endpoint(form)
	if err != nil {
		return nil, err
	}
	srv, err := s.lookupCert(e.serverARN)
	if err != nil {
		return nil, err
	}
	ca := strings.TrimRight(string(srv.chainPEM), "\n")
	if ca == "" {
		ca = strings.TrimRight(string(srv.certPEM), "\n")
	}
	cfg := "client\ndev tun\nproto " + e.protocol + "\nremote " + e.dnsName + " " + fmt.Sprint(e.port) + "\nremote-random-hostname\nresolv-retry infinite\nnobind\n" +
		"remote-cert-tls server\ncipher AES-256-GCM\nverb 3\n<ca>\n" + ca + "\n\n</ca>\n\n\nreneg-sec 0\n"
	return exportConfigResponse{Xmlns: ec2NS, RequestID: labapi.RequestID(ctx), ClientConfiguration: cfg}, nil
}

type importCRLResponse struct {
	XMLName   xml.Name `xml:"ImportClientVpnClientCertificateRevocationListResponse"`
	Xmlns     string   `xml:"xmlns,attr"`
	RequestID string   `xml:"requestId"`
	Return    bool     `xml:"return"`
}

// importCRL replaces the endpoint's CRL after checking that it is a PEM CRL
// signed by the client root CA (the last certificate of the client root
// chain as imported, or the certificate itself when it is a CA).
func (s *Service) importCRL(ctx context.Context, form url.Values) (any, error) {
	if err := s.authorize(ctx, "ec2:ImportClientVpnClientCertificateRevocationList"); err != nil {
		return nil, err
	}
	e, err := s.endpoint(form)
	if err != nil {
		return nil, err
	}
	text := form.Get("CertificateRevocationList")
	if text == "" {
		return nil, labapi.Errorf(400, "MissingParameter", "The request must contain the parameter CertificateRevocationList")
	}
	blk, _ := pem.Decode([]byte(text))
	if blk == nil || blk.Type != "X509 CRL" {
		return nil, labapi.Errorf(400, "InvalidParameterValue", "The certificate revocation list is not valid: expected a PEM-encoded X509 CRL")
	}
	crl, err := x509.ParseRevocationList(blk.Bytes)
	if err != nil {
		return nil, labapi.Errorf(400, "InvalidParameterValue", "The certificate revocation list is not valid: %v", err)
	}
	if len(crl.RevokedCertificateEntries) > maxCRLEntries {
		return nil, labapi.Errorf(400, "InvalidParameterValue", "The certificate revocation list has %d entries; the limit is %d", len(crl.RevokedCertificateEntries), maxCRLEntries)
	}
	root, err := s.lookupCert(e.clientRootARN)
	if err != nil {
		return nil, err
	}
	ca := root.cert
	if len(root.chain) > 0 {
		ca = root.chain[len(root.chain)-1]
	}
	if err := crl.CheckSignatureFrom(ca); err != nil {
		return nil, labapi.Errorf(400, "InvalidParameterValue", "The certificate revocation list is not signed by the client root certificate authority")
	}
	s.mu.Lock()
	e.crlPEM = text
	e.crlImports++
	s.mu.Unlock()
	return importCRLResponse{Xmlns: ec2NS, RequestID: labapi.RequestID(ctx), Return: true}, nil
}

type crlStatus struct {
	Code    string `xml:"code"`
	Message string `xml:"message,omitempty"`
}

type exportCRLResponse struct {
	XMLName   xml.Name  `xml:"ExportClientVpnClientCertificateRevocationListResponse"`
	Xmlns     string    `xml:"xmlns,attr"`
	RequestID string    `xml:"requestId"`
	CRL       string    `xml:"certificateRevocationList,omitempty"`
	Status    crlStatus `xml:"status"`
}

func (s *Service) exportCRL(ctx context.Context, form url.Values) (any, error) {
	if err := s.authorize(ctx, "ec2:ExportClientVpnClientCertificateRevocationList"); err != nil {
		return nil, err
	}
	e, err := s.endpoint(form)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := exportCRLResponse{Xmlns: ec2NS, RequestID: labapi.RequestID(ctx), CRL: e.crlPEM, Status: crlStatus{Code: "active"}}
	if e.crlPEM == "" {
		out.Status = crlStatus{Code: "pending", Message: "No certificate revocation list has been imported"}
	}
	return out, nil
}

// CRLImports is how many CRLs were imported into endpoint id.
func (s *Service) CRLImports(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.endpoints[id]; ok {
		return e.crlImports
	}
	return 0
}
