package prefs

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"github.com/devgate/devgate/internal/exitcode"
)

// API is the part of the SSM client that Store uses (*ssm.Client has it).
type API interface {
	GetDocument(context.Context, *ssm.GetDocumentInput, ...func(*ssm.Options)) (*ssm.GetDocumentOutput, error)
	CreateDocument(context.Context, *ssm.CreateDocumentInput, ...func(*ssm.Options)) (*ssm.CreateDocumentOutput, error)
	UpdateDocument(context.Context, *ssm.UpdateDocumentInput, ...func(*ssm.Options)) (*ssm.UpdateDocumentOutput, error)
	UpdateDocumentDefaultVersion(context.Context, *ssm.UpdateDocumentDefaultVersionInput, ...func(*ssm.Options)) (*ssm.UpdateDocumentDefaultVersionOutput, error)
}

var _ API = (*ssm.Client)(nil)

// Store reads and writes the preferences document of one region.
type Store struct{ API API }

// Current is the document as stored (its default version).
type Current struct {
	Exists   bool      // false until preferences are first saved
	Version  string    // the default version's number
	Raw      string    // the content as stored
	Doc      *Document // parsed; nil when ParseErr is set or !Exists
	ParseErr error     // the stored document does not pass Parse
}

// permissionHint lists what preference-setting-permissions.md requires.
const permissionHint = "grant ssm:GetDocument, ssm:CreateDocument, ssm:UpdateDocument and ssm:UpdateDocumentDefaultVersion on arn:aws:ssm:<region>:<account>:document/" + DocumentName

func classify(err error, action string) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "AccessDeniedException", "AccessDenied":
			return exitcode.Wrap(err, exitcode.Permission, permissionHint, "%s was denied", action)
		case "ThrottlingException":
			return exitcode.Wrap(err, exitcode.Throttled, "wait a minute and retry", "AWS is throttling %s", action)
		case "UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException":
			return exitcode.Wrap(err, exitcode.Credentials, "check your AWS credentials (aws sts get-caller-identity)", "AWS rejected the credentials")
		}
	}
	return fmt.Errorf("%s: %w", action, err)
}

// Get reads the default version of the preferences document.
func (s Store) Get(ctx context.Context) (*Current, error) {
	out, err := s.API.GetDocument(ctx, &ssm.GetDocumentInput{Name: aws.String(DocumentName)})
	var inv *ssmtypes.InvalidDocument
	if errors.As(err, &inv) {
		return &Current{}, nil // the document does not exist until preferences are first saved
	}
	if err != nil {
		return nil, classify(err, "ssm:GetDocument")
	}
	c := &Current{Exists: true, Version: aws.ToString(out.DocumentVersion), Raw: aws.ToString(out.Content)}
	c.Doc, c.ParseErr = Parse([]byte(c.Raw))
	return c, nil
}

// Result says what Put did.
type Result struct {
	Created bool   // CreateDocument (first save in the region)
	Version string // the version that is now the default
}

// Put stores d: CreateDocument (type Session, JSON) when the document does
// not exist, otherwise UpdateDocument of $LATEST followed by
// UpdateDocumentDefaultVersion, because consumers read the default version.
// Content identical to the latest version (DuplicateDocumentContent) only
// promotes that version.
func (s Store) Put(ctx context.Context, cur *Current, d *Document) (Result, error) {
	if err := d.Validate(); err != nil {
		return Result{}, err
	}
	content := string(d.Marshal())
	if !cur.Exists {
		out, err := s.API.CreateDocument(ctx, &ssm.CreateDocumentInput{
			Name: aws.String(DocumentName), Content: aws.String(content),
			DocumentType: ssmtypes.DocumentTypeSession, DocumentFormat: ssmtypes.DocumentFormatJson,
		})
		var exists *ssmtypes.DocumentAlreadyExists
		if err == nil {
			return Result{Created: true, Version: aws.ToString(out.DocumentDescription.DefaultVersion)}, nil
		}
		if !errors.As(err, &exists) {
			return Result{}, classify(err, "ssm:CreateDocument")
		}
		// Someone saved preferences meanwhile: update instead.
	}
	var version string
	out, err := s.API.UpdateDocument(ctx, &ssm.UpdateDocumentInput{
		Name: aws.String(DocumentName), Content: aws.String(content), DocumentVersion: aws.String("$LATEST"),
	})
	var dup *ssmtypes.DuplicateDocumentContent
	switch {
	case err == nil:
		version = aws.ToString(out.DocumentDescription.DocumentVersion)
	case errors.As(err, &dup):
		latest, gerr := s.API.GetDocument(ctx, &ssm.GetDocumentInput{Name: aws.String(DocumentName), DocumentVersion: aws.String("$LATEST")})
		if gerr != nil {
			return Result{}, classify(gerr, "ssm:GetDocument")
		}
		if aws.ToString(latest.Content) != content {
			return Result{}, exitcode.Wrap(err, exitcode.Generic,
				"an older version holds exactly this content: promote it with `aws ssm update-document-default-version`, or change a value",
				"SSM refused the update as a duplicate of an older version")
		}
		version = aws.ToString(latest.DocumentVersion)
	default:
		return Result{}, classify(err, "ssm:UpdateDocument")
	}
	if _, err := s.API.UpdateDocumentDefaultVersion(ctx, &ssm.UpdateDocumentDefaultVersionInput{
		Name: aws.String(DocumentName), DocumentVersion: aws.String(version),
	}); err != nil {
		return Result{}, classify(err, "ssm:UpdateDocumentDefaultVersion")
	}
	return Result{Version: version}, nil
}
