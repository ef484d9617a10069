package labvpn_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	acmtypes "github.com/aws/aws-sdk-go-v2/service/acm/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labtest"
	"github.com/devgate/devgate/internal/lab/labvpn"
	"github.com/devgate/devgate/internal/pki"
)

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func start(t *testing.T) (*labvpn.Service, aws.Config) {
	t.Helper()
	svc := labvpn.New()
	l := labtest.Start(t, lab.Options{Instances: []lab.InstanceSpec{}, Services: []lab.Service{svc}})
	return svc, l.AWSConfig()
}

func newPKI(t *testing.T, server string) *pki.PKI {
	t.Helper()
	p, err := pki.Init(filepath.Join(t.TempDir(), "pki"), pki.InitParams{ServerName: server}, "correct horse battery", pki.Options{ScryptWorkFactor: 10})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestACMImportDescribe(t *testing.T) {
	svc, cfg := start(t)
	ctx := context.Background()
	c := acm.NewFromConfig(cfg)
	p := newPKI(t, "vpn.example.com")
	srv, err := p.Server()
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.ImportCertificate(ctx, &acm.ImportCertificateInput{Certificate: srv.CertPEM, PrivateKey: srv.KeyPEM, CertificateChain: p.CAPEM()})
	if err != nil {
		t.Fatalf("ImportCertificate: %v", err)
	}
	arn := aws.ToString(out.CertificateArn)
	if !strings.HasPrefix(arn, "arn:aws:acm:us-east-1:123456789012:certificate/") {
		t.Fatalf("ARN %q", arn)
	}
	d, err := c.DescribeCertificate(ctx, &acm.DescribeCertificateInput{CertificateArn: &arn})
	if err != nil {
		t.Fatalf("DescribeCertificate: %v", err)
	}
	cd := d.Certificate
	if aws.ToString(cd.DomainName) != "vpn.example.com" || len(cd.SubjectAlternativeNames) != 1 || cd.KeyAlgorithm != acmtypes.KeyAlgorithmRsa2048 ||
		cd.Type != acmtypes.CertificateTypeImported || cd.Status != acmtypes.CertificateStatusIssued || cd.NotAfter == nil || cd.ImportedAt == nil {
		t.Fatalf("detail: %+v", cd)
	}
	if len(cd.ExtendedKeyUsages) != 1 || cd.ExtendedKeyUsages[0].Name != acmtypes.ExtendedKeyUsageNameTlsWebServerAuthentication {
		t.Fatalf("EKUs %+v", cd.ExtendedKeyUsages)
	}
	if !cd.NotAfter.Equal(srv.Cert.NotAfter) {
		t.Fatalf("NotAfter %v, want %v", cd.NotAfter, srv.Cert.NotAfter)
	}
	// Re-import in place keeps the ARN.
	out2, err := c.ImportCertificate(ctx, &acm.ImportCertificateInput{CertificateArn: &arn, Certificate: srv.CertPEM, PrivateKey: srv.KeyPEM, CertificateChain: p.CAPEM()})
	if err != nil || aws.ToString(out2.CertificateArn) != arn || svc.Imports(arn) != 2 {
		t.Fatalf("re-import: %v, ARN %q, imports %d", err, aws.ToString(out2.CertificateArn), svc.Imports(arn))
	}
	g, err := c.GetCertificate(ctx, &acm.GetCertificateInput{CertificateArn: &arn})
	if err != nil || aws.ToString(g.Certificate) != string(srv.CertPEM) || aws.ToString(g.CertificateChain) != string(p.CAPEM()) {
		t.Fatalf("GetCertificate: %v", err)
	}

	other := newPKI(t, "other.example.com")
	osrv, _ := other.Server()
	for _, tc := range []struct {
		name string
		in   acm.ImportCertificateInput
		code string
		msg  string
	}{
		{"key mismatch", acm.ImportCertificateInput{Certificate: srv.CertPEM, PrivateKey: osrv.KeyPEM}, "ValidationException", "does not match"},
		{"wrong chain", acm.ImportCertificateInput{Certificate: srv.CertPEM, PrivateKey: srv.KeyPEM, CertificateChain: other.CAPEM()}, "ValidationException", "certificate chain"},
		{"two certs", acm.ImportCertificateInput{Certificate: append(append([]byte{}, srv.CertPEM...), p.CAPEM()...), PrivateKey: srv.KeyPEM}, "ValidationException", "more than one"},
		{"unknown ARN", acm.ImportCertificateInput{CertificateArn: aws.String("arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"), Certificate: srv.CertPEM, PrivateKey: srv.KeyPEM}, "ResourceNotFoundException", "Could not find"},
		{"bad ARN", acm.ImportCertificateInput{CertificateArn: aws.String("nope"), Certificate: srv.CertPEM, PrivateKey: srv.KeyPEM}, "InvalidArnException", "not a valid ARN"},
	} {
		_, err := c.ImportCertificate(ctx, &tc.in)
		if apiCode(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %s %q", tc.name, err, tc.code, tc.msg)
		}
	}
	var rnf *acmtypes.ResourceNotFoundException
	if _, err := c.DescribeCertificate(ctx, &acm.DescribeCertificateInput{CertificateArn: aws.String("arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000")}); !errors.As(err, &rnf) {
		t.Errorf("Describe unknown: %v, want a typed ResourceNotFoundException", err)
	}
	svc.Deny("acm:ImportCertificate")
	var ade *acmtypes.AccessDeniedException
	if _, err := c.ImportCertificate(ctx, &acm.ImportCertificateInput{Certificate: srv.CertPEM, PrivateKey: srv.KeyPEM}); !errors.As(err, &ade) {
		t.Errorf("denied import: %v", err)
	}
}

func TestClientVPNExportAndCRL(t *testing.T) {
	svc, cfg := start(t)
	ctx := context.Background()
	p := newPKI(t, "vpn.example.com")
	srv, _ := p.Server()
	imp, err := acm.NewFromConfig(cfg).ImportCertificate(ctx, &acm.ImportCertificateInput{Certificate: srv.CertPEM, PrivateKey: srv.KeyPEM, CertificateChain: p.CAPEM()})
	if err != nil {
		t.Fatal(err)
	}
	id, err := svc.AddEndpoint(labvpn.EndpointSpec{ServerCertificateArn: aws.ToString(imp.CertificateArn)})
	if err != nil {
		t.Fatal(err)
	}
	e := ec2.NewFromConfig(cfg)
	exp, err := e.ExportClientVpnClientConfiguration(ctx, &ec2.ExportClientVpnClientConfigurationInput{ClientVpnEndpointId: &id})
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	conf := aws.ToString(exp.ClientConfiguration)
	for _, want := range []string{"client\n", "remote " + id + ".prod.clientvpn.us-east-1.amazonaws.com 443\n", "remote-cert-tls server\n", "<ca>\n" + string(p.CAPEM())} {
		if !strings.Contains(conf, want) {
			t.Errorf("exported profile lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(conf, "<cert>") || strings.Contains(conf, "<key>") {
		t.Errorf("exported profile has credentials:\n%s", conf)
	}
	crl, err := p.CRLPEM()
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.ImportClientVpnClientCertificateRevocationList(ctx, &ec2.ImportClientVpnClientCertificateRevocationListInput{
		ClientVpnEndpointId: &id, CertificateRevocationList: aws.String(string(crl))})
	if err != nil || !aws.ToBool(out.Return) || svc.CRLImports(id) != 1 {
		t.Fatalf("ImportCRL: %v %v", err, out)
	}
	got, err := e.ExportClientVpnClientCertificateRevocationList(ctx, &ec2.ExportClientVpnClientCertificateRevocationListInput{ClientVpnEndpointId: &id})
	if err != nil || aws.ToString(got.CertificateRevocationList) != string(crl) || got.Status == nil || got.Status.Code != "active" {
		t.Fatalf("ExportCRL: %v %+v", err, got)
	}
	other := newPKI(t, "other.example.com")
	ocrl, _ := other.CRLPEM()
	for _, tc := range []struct {
		name, id, crl, code string
	}{
		{"foreign CRL", id, string(ocrl), "InvalidParameterValue"},
		{"not a CRL", id, string(p.CAPEM()), "InvalidParameterValue"},
		{"unknown endpoint", "cvpn-endpoint-0123456789abcdef0", string(crl), "InvalidClientVpnEndpointId.NotFound"},
	} {
		_, err := e.ImportClientVpnClientCertificateRevocationList(ctx, &ec2.ImportClientVpnClientCertificateRevocationListInput{
			ClientVpnEndpointId: &tc.id, CertificateRevocationList: &tc.crl})
		if apiCode(err) != tc.code {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}
	if svc.CRLImports(id) != 1 {
		t.Fatalf("a refused import replaced the CRL")
	}
	svc.Deny("ec2:ExportClientVpnClientConfiguration")
	if _, err := e.ExportClientVpnClientConfiguration(ctx, &ec2.ExportClientVpnClientConfigurationInput{ClientVpnEndpointId: &id}); apiCode(err) != "UnauthorizedOperation" {
		t.Errorf("denied export: %v", err)
	}
}

func TestEndpointNeedsDomain(t *testing.T) {
	svc := labvpn.New()
	if _, err := svc.AddEndpoint(labvpn.EndpointSpec{ServerCertificateArn: "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"}); err == nil {
		t.Fatal("endpoint with an unknown certificate created")
	}
}

func TestSSMDocuments(t *testing.T) {
	svc, cfg := start(t)
	ctx := context.Background()
	c := ssm.NewFromConfig(cfg)
	name := aws.String("SSM-SessionManagerRunShell")
	var inv *ssmtypes.InvalidDocument
	if _, err := c.GetDocument(ctx, &ssm.GetDocumentInput{Name: name}); !errors.As(err, &inv) {
		t.Fatalf("GetDocument before create: %v, want InvalidDocument", err)
	}
	if _, err := c.UpdateDocument(ctx, &ssm.UpdateDocumentInput{Name: name, Content: aws.String(`{}`), DocumentVersion: aws.String("$LATEST")}); !errors.As(err, &inv) {
		t.Fatalf("UpdateDocument before create: %v, want InvalidDocument", err)
	}
	v1 := `{"schemaVersion":"1.0","sessionType":"Standard_Stream","inputs":{"idleSessionTimeout":"20","s3EncryptionEnabled":true}}`
	cr, err := c.CreateDocument(ctx, &ssm.CreateDocumentInput{Name: name, Content: &v1, DocumentType: ssmtypes.DocumentTypeSession, DocumentFormat: ssmtypes.DocumentFormatJson})
	if err != nil || aws.ToString(cr.DocumentDescription.DocumentVersion) != "1" {
		t.Fatalf("CreateDocument: %v", err)
	}
	var exists *ssmtypes.DocumentAlreadyExists
	if _, err := c.CreateDocument(ctx, &ssm.CreateDocumentInput{Name: name, Content: &v1, DocumentType: ssmtypes.DocumentTypeSession}); !errors.As(err, &exists) {
		t.Fatalf("second CreateDocument: %v", err)
	}
	var dup *ssmtypes.DuplicateDocumentContent
	if _, err := c.UpdateDocument(ctx, &ssm.UpdateDocumentInput{Name: name, Content: &v1, DocumentVersion: aws.String("$LATEST")}); !errors.As(err, &dup) {
		t.Fatalf("UpdateDocument same content: %v", err)
	}
	v2 := strings.Replace(v1, `"20"`, `"30"`, 1)
	up, err := c.UpdateDocument(ctx, &ssm.UpdateDocumentInput{Name: name, Content: &v2, DocumentVersion: aws.String("$LATEST")})
	if err != nil {
		t.Fatal(err)
	}
	if dd := up.DocumentDescription; aws.ToString(dd.LatestVersion) != "2" || aws.ToString(dd.DefaultVersion) != "1" {
		t.Fatalf("after update: latest %s default %s", aws.ToString(dd.LatestVersion), aws.ToString(dd.DefaultVersion))
	}
	g, _ := c.GetDocument(ctx, &ssm.GetDocumentInput{Name: name})
	if aws.ToString(g.Content) != v1 {
		t.Fatalf("GetDocument without version returned %q, want the default (v1)", aws.ToString(g.Content))
	}
	if _, err := c.UpdateDocumentDefaultVersion(ctx, &ssm.UpdateDocumentDefaultVersionInput{Name: name, DocumentVersion: aws.String("2")}); err != nil {
		t.Fatal(err)
	}
	d, err := c.DescribeDocument(ctx, &ssm.DescribeDocumentInput{Name: name})
	if err != nil || aws.ToString(d.Document.DefaultVersion) != "2" || d.Document.DocumentType != ssmtypes.DocumentTypeSession {
		t.Fatalf("DescribeDocument: %v %+v", err, d)
	}
	if content, def, latest, ok := svc.Document(*name); !ok || content != v2 || def != 2 || latest != 2 {
		t.Fatalf("state: %v %d %d", ok, def, latest)
	}
	var badContent *ssmtypes.InvalidDocumentContent
	for _, bad := range []string{
		`{"schemaVersion":"1.0","sessionType":"Standard_Stream","inputs":{"cloudWatchLogGroup":"x"}}`,
		`{"sessionManagerRunShell":{}, "schemaVersion":"1.0","sessionType":"Standard_Stream"}`,
		`{"schemaVersion":"1.0","sessionType":"Standard_Stream","inputs":{"s3EncryptionEnabled":"yes"}}`,
		`{"schemaVersion":"1.0","sessionType":"Shell"}`,
		`not json`,
	} {
		if _, err := c.UpdateDocument(ctx, &ssm.UpdateDocumentInput{Name: name, Content: aws.String(bad), DocumentVersion: aws.String("$LATEST")}); !errors.As(err, &badContent) {
			t.Errorf("UpdateDocument(%s) = %v, want InvalidDocumentContent", bad, err)
		}
	}
	var badVer *ssmtypes.InvalidDocumentVersion
	if _, err := c.UpdateDocument(ctx, &ssm.UpdateDocumentInput{Name: name, Content: aws.String(strings.Replace(v1, `"20"`, `"40"`, 1)), DocumentVersion: aws.String("1")}); !errors.As(err, &badVer) {
		t.Errorf("update of an old version: %v", err)
	}
	svc.Deny("ssm:UpdateDocument")
	var ade *ssmtypes.AccessDeniedException
	if _, err := c.UpdateDocument(ctx, &ssm.UpdateDocumentInput{Name: name, Content: &v1, DocumentVersion: aws.String("$LATEST")}); !errors.As(err, &ade) {
		t.Errorf("denied update: %v", err)
	}
}
