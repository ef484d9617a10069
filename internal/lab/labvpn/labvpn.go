// Package labvpn is devgate-lab's simulation of the AWS calls behind
// `devgate vpn` and `devgate prefs`:
//
//   - ACM (awsJson1.1, X-Amz-Target "CertificateManager."): ImportCertificate
//     (new ARN, or re-import in place with CertificateArn), DescribeCertificate,
//     GetCertificate; certificates are parsed and checked as ACM does
//     (one PEM certificate, an unencrypted key that matches it, a supported
//     key algorithm, a chain that verifies it, validity at import time).
//   - EC2 Client VPN (query protocol, XML): ExportClientVpnClientConfiguration
//     (an .ovpn shaped like AWS's, with the server certificate's chain in
//     <ca>), ImportClientVpnClientCertificateRevocationList and
//     ExportClientVpnClientCertificateRevocationList. Endpoints are created
//     with AddEndpoint (there is no CreateClientVpnEndpoint call), which
//     refuses a server certificate without a domain as AWS does.
//   - SSM documents (awsJson1.1, "AmazonSSM."): CreateDocument, UpdateDocument,
//     GetDocument, DescribeDocument, UpdateDocumentDefaultVersion with
//     versions, the default version, DuplicateDocumentContent and a check of
//     Session documents' schema.
//
// Errors use AWS's codes and shapes (labapi.Errorf); the exact wording of
// some messages is an approximation. It is not linked into devgate. It keeps
// state in memory only.
package labvpn

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/devgate/devgate/internal/lab/labapi"
)

// Options configure a Service.
type Options struct {
	Region  string           // default us-east-1
	Account string           // default 123456789012
	Now     func() time.Time // default time.Now
}

// Service is the ACM, Client VPN and SSM-document part of the lab.
type Service struct {
	opts Options

	mu        sync.Mutex
	certs     map[string]*acmCert // by ARN
	endpoints map[string]*endpoint
	docs      map[string]*document
	denied    map[string]bool
}

// New returns a Service with default options.
func New() *Service { return NewWithOptions(Options{}) }

// NewWithOptions returns a Service.
func NewWithOptions(o Options) *Service {
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.Account == "" {
		o.Account = "123456789012"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Service{opts: o, certs: map[string]*acmCert{}, endpoints: map[string]*endpoint{},
		docs: map[string]*document{}, denied: map[string]bool{}}
}

// Register mounts the service's operations on r.
func (s *Service) Register(r *labapi.Registry) {
	r.JSON("CertificateManager.ImportCertificate", s.importCertificate)
	r.JSON("CertificateManager.DescribeCertificate", s.describeCertificate)
	r.JSON("CertificateManager.GetCertificate", s.getCertificate)
	r.Query("ec2", "ExportClientVpnClientConfiguration", s.exportClientConfiguration)
	r.Query("ec2", "ImportClientVpnClientCertificateRevocationList", s.importCRL)
	r.Query("ec2", "ExportClientVpnClientCertificateRevocationList", s.exportCRL)
	r.JSON("AmazonSSM.CreateDocument", s.createDocument)
	r.JSON("AmazonSSM.UpdateDocument", s.updateDocument)
	r.JSON("AmazonSSM.GetDocument", s.getDocument)
	r.JSON("AmazonSSM.DescribeDocument", s.describeDocument)
	r.JSON("AmazonSSM.UpdateDocumentDefaultVersion", s.updateDocumentDefaultVersion)
}

// Deny makes the service answer action ("acm:ImportCertificate",
// "ec2:ImportClientVpnClientCertificateRevocationList", "ssm:UpdateDocument", …)
// with AWS's access-denied error.
func (s *Service) Deny(action string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.denied[action] = true
}

func (s *Service) authorize(_ context.Context, action string) error {
	s.mu.Lock()
	denied := s.denied[action]
	s.mu.Unlock()
	if !denied {
		return nil
	}
	user := fmt.Sprintf("arn:aws:iam::%s:user/devgate-lab", s.opts.Account)
	if len(action) > 4 && action[:4] == "ec2:" {
		return labapi.Errorf(403, "UnauthorizedOperation", "You are not authorized to perform this operation. User: %s is not authorized to perform: %s", user, action)
	}
	return labapi.Errorf(400, "AccessDeniedException", "User: %s is not authorized to perform: %s on resource: *", user, action)
}

func randomHex(n int) string {
	b := make([]byte, (n+1)/2)
	rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

func epoch(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
