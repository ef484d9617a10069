// Package cvpn makes the AWS calls of `devgate vpn`: it exports a Client VPN
// endpoint's client configuration, imports the server certificate (with its
// chain) into ACM and describes it, and imports a CRL into an endpoint.
// Errors are classified by awsapi's table.
//
// It does not read or write the PKI (package pki does) nor print anything.
package cvpn

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	acmtypes "github.com/aws/aws-sdk-go-v2/service/acm/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/devgate/devgate/internal/awsapi"
)

// ExportProfile returns the endpoint's client configuration (.ovpn text)
// (ec2:ExportClientVpnClientConfiguration).
func ExportProfile(ctx context.Context, cfg aws.Config, endpoint string) ([]byte, error) {
	res, err := ec2.NewFromConfig(cfg).ExportClientVpnClientConfiguration(ctx, &ec2.ExportClientVpnClientConfigurationInput{ClientVpnEndpointId: &endpoint})
	if err != nil {
		return nil, awsapi.Classify(err, "ec2:ExportClientVpnClientConfiguration")
	}
	return []byte(aws.ToString(res.ClientConfiguration)), nil
}

// Import is the result of ImportServer.
type Import struct {
	ARN string
	// PreviousGone is true when prevARN no longer existed in ACM and the
	// certificate was imported as a new one (the endpoint must be updated).
	PreviousGone bool
}

// ImportServer imports a PEM certificate, its key and chain into ACM
// (acm:ImportCertificate), re-importing into prevARN when it is set and
// still exists, so the ARN stays the same.
func ImportServer(ctx context.Context, cfg aws.Config, prevARN string, certPEM, keyPEM, chainPEM []byte) (Import, error) {
	client := acm.NewFromConfig(cfg)
	in := &acm.ImportCertificateInput{Certificate: certPEM, PrivateKey: keyPEM, CertificateChain: chainPEM}
	if prevARN != "" {
		in.CertificateArn = aws.String(prevARN)
	}
	var res Import
	out, err := client.ImportCertificate(ctx, in)
	var rnf *acmtypes.ResourceNotFoundException
	if errors.As(err, &rnf) && in.CertificateArn != nil {
		res.PreviousGone = true
		in.CertificateArn = nil
		out, err = client.ImportCertificate(ctx, in)
	}
	if err != nil {
		return res, awsapi.Classify(err, "acm:ImportCertificate")
	}
	res.ARN = aws.ToString(out.CertificateArn)
	return res, nil
}

// Certificate is what ACM made of an imported certificate.
type Certificate struct {
	DomainName   string // "" when ACM found none (Client VPN then refuses it)
	KeyAlgorithm string
	NotAfter     time.Time
}

// DescribeCertificate describes arn (acm:DescribeCertificate).
func DescribeCertificate(ctx context.Context, cfg aws.Config, arn string) (Certificate, error) {
	d, err := acm.NewFromConfig(cfg).DescribeCertificate(ctx, &acm.DescribeCertificateInput{CertificateArn: &arn})
	if err != nil {
		return Certificate{}, awsapi.Classify(err, "acm:DescribeCertificate")
	}
	return Certificate{DomainName: aws.ToString(d.Certificate.DomainName), KeyAlgorithm: string(d.Certificate.KeyAlgorithm),
		NotAfter: aws.ToTime(d.Certificate.NotAfter)}, nil
}

// ImportCRL replaces the endpoint's CRL with crlPEM
// (ec2:ImportClientVpnClientCertificateRevocationList); the endpoint resets
// its client connections.
func ImportCRL(ctx context.Context, cfg aws.Config, endpoint string, crlPEM []byte) error {
	_, err := ec2.NewFromConfig(cfg).ImportClientVpnClientCertificateRevocationList(ctx, &ec2.ImportClientVpnClientCertificateRevocationListInput{
		ClientVpnEndpointId: &endpoint, CertificateRevocationList: aws.String(string(crlPEM)),
	})
	return awsapi.Classify(err, "ec2:ImportClientVpnClientCertificateRevocationList")
}
