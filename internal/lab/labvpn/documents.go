package labvpn

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/devgate/devgate/internal/lab/labapi"
)

type docVersion struct {
	content string
	hash    string
	created time.Time
	schema  string
}

type document struct {
	name     string
	docType  string
	format   string
	created  time.Time
	versions []docVersion // versions[i] is version i+1
	deflt    int          // 1-based
}

var docNameRe = regexp.MustCompile(`^[a-zA-Z0-9_\-.]{3,128}$`)

// sessionInputs are the inputs of a Standard_Stream Session document and
// their JSON types (SSM user guide, session-manager-schema.md).
var sessionInputs = map[string]string{
	"s3BucketName": "string", "s3KeyPrefix": "string", "s3EncryptionEnabled": "bool",
	"cloudWatchLogGroupName": "string", "cloudWatchEncryptionEnabled": "bool", "cloudWatchStreamingEnabled": "bool",
	"kmsKeyId": "string", "runAsEnabled": "bool", "runAsDefaultUser": "string",
	"idleSessionTimeout": "string", "maxSessionDuration": "string", "shellProfile": "object",
}

func invalidContent(format string, args ...any) error {
	return labapi.Errorf(400, "InvalidDocumentContent", format, args...)
}

// checkContent validates content for docType and returns its schemaVersion.
func checkContent(content, docType, format string) (string, error) {
	if format != "" && format != "JSON" {
		return "", invalidContent("devgate-lab accepts only JSON documents, not %s", format)
	}
	if len(content) > 64*1024 {
		return "", labapi.Errorf(400, "MaxDocumentSizeExceeded", "The content for the document exceeds the maximum size of 64 KB.")
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal([]byte(content), &doc); err != nil {
		return "", invalidContent("The content of the document is not valid JSON: %v", err)
	}
	var schema string
	if err := json.Unmarshal(doc["schemaVersion"], &schema); err != nil || schema == "" {
		return "", invalidContent("schemaVersion is missing or not a string")
	}
	if docType != "Session" {
		return schema, nil
	}
	if schema != "1.0" {
		return "", labapi.Errorf(400, "InvalidDocumentSchemaVersion", "Session documents support only schemaVersion 1.0, not %q", schema)
	}
	for k := range doc {
		switch k {
		case "schemaVersion", "description", "sessionType", "inputs", "parameters", "properties":
		default:
			return "", invalidContent("Unrecognized top-level key %q", k)
		}
	}
	var st string
	json.Unmarshal(doc["sessionType"], &st)
	switch st {
	case "Standard_Stream", "InteractiveCommands", "NonInteractiveCommands", "Port":
	default:
		return "", invalidContent("sessionType %q is not one of Standard_Stream, InteractiveCommands, NonInteractiveCommands, Port", st)
	}
	if st != "Standard_Stream" {
		return schema, nil
	}
	var inputs map[string]json.RawMessage
	if raw, ok := doc["inputs"]; ok {
		if err := json.Unmarshal(raw, &inputs); err != nil {
			return "", invalidContent("inputs must be an object")
		}
	}
	for k, v := range inputs {
		want, ok := sessionInputs[k]
		if !ok {
			return "", invalidContent("Unrecognized input %q for sessionType Standard_Stream", k)
		}
		var got string
		var x any
		json.Unmarshal(v, &x)
		switch x.(type) {
		case string:
			got = "string"
		case bool:
			got = "bool"
		case map[string]any:
			got = "object"
		default:
			got = "other"
		}
		if got != want {
			return "", invalidContent("Input %q must be a %s", k, want)
		}
		if k == "shellProfile" {
			for pk, pv := range x.(map[string]any) {
				if _, isStr := pv.(string); (pk != "windows" && pk != "linux") || !isStr {
					return "", invalidContent("shellProfile accepts only the strings windows and linux, not %q", pk)
				}
			}
		}
	}
	return schema, nil
}

func docHash(content string) string {
	h := sha256.Sum256([]byte(content))
	return hex.EncodeToString(h[:])
}

func (s *Service) docNotFound(name string) error {
	return labapi.Errorf(400, "InvalidDocument", "Document with name %s does not exist.", name)
}

// description is the DocumentDescription of version v (1-based) of d.
func (s *Service) description(d *document, v int) map[string]any {
	ver := d.versions[v-1]
	return map[string]any{
		"Name": d.name, "DocumentVersion": strconv.Itoa(v), "LatestVersion": strconv.Itoa(len(d.versions)),
		"DefaultVersion": strconv.Itoa(d.deflt), "Status": "Active", "DocumentType": d.docType,
		"DocumentFormat": d.format, "SchemaVersion": ver.schema, "Hash": ver.hash, "HashType": "Sha256",
		"CreatedDate": epoch(d.created), "Owner": s.opts.Account, "PlatformTypes": []string{"Windows", "Linux", "MacOS"},
	}
}

// version resolves "", "$DEFAULT", "$LATEST" or a number; def is used for "".
func version(d *document, v string, def int) (int, error) {
	switch v {
	case "":
		return def, nil
	case "$DEFAULT":
		return d.deflt, nil
	case "$LATEST":
		return len(d.versions), nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > len(d.versions) || strings.HasPrefix(v, "0") {
		return 0, labapi.Errorf(400, "InvalidDocumentVersion", "The document version is not valid or does not exist.")
	}
	return n, nil
}

func decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return labapi.Errorf(400, "SerializationException", "%v", err)
	}
	return nil
}

func (s *Service) createDocument(ctx context.Context, body []byte) (any, error) {
	if err := s.authorize(ctx, "ssm:CreateDocument"); err != nil {
		return nil, err
	}
	var in struct{ Content, Name, DocumentType, DocumentFormat string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if !docNameRe.MatchString(in.Name) {
		return nil, labapi.Errorf(400, "ValidationException", "1 validation error detected: Value '%s' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9_\\-.]{3,128}$", in.Name)
	}
	if in.DocumentType == "" {
		in.DocumentType = "Command"
	}
	if in.DocumentFormat == "" {
		in.DocumentFormat = "JSON"
	}
	schema, err := checkContent(in.Content, in.DocumentType, in.DocumentFormat)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.docs[in.Name]; ok {
		return nil, labapi.Errorf(400, "DocumentAlreadyExists", "Document with same name %s already exists", in.Name)
	}
	now := s.opts.Now()
	d := &document{name: in.Name, docType: in.DocumentType, format: in.DocumentFormat, created: now, deflt: 1,
		versions: []docVersion{{content: in.Content, hash: docHash(in.Content), created: now, schema: schema}}}
	s.docs[in.Name] = d
	return map[string]any{"DocumentDescription": s.description(d, 1)}, nil
}

func (s *Service) updateDocument(ctx context.Context, body []byte) (any, error) {
	if err := s.authorize(ctx, "ssm:UpdateDocument"); err != nil {
		return nil, err
	}
	var in struct{ Content, Name, DocumentVersion, DocumentFormat string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	d, ok := s.docs[in.Name]
	s.mu.Unlock()
	if !ok {
		return nil, s.docNotFound(in.Name)
	}
	if in.DocumentFormat == "" {
		in.DocumentFormat = d.format
	}
	schema, err := checkContent(in.Content, d.docType, in.DocumentFormat)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := version(d, in.DocumentVersion, len(d.versions))
	if err != nil {
		return nil, err
	}
	if v != len(d.versions) {
		return nil, labapi.Errorf(400, "InvalidDocumentVersion", "Only the latest version of the document can be updated (latest is %d).", len(d.versions))
	}
	h := docHash(in.Content)
	for _, ver := range d.versions {
		if ver.hash == h {
			return nil, labapi.Errorf(400, "DuplicateDocumentContent", "The content of the association document matches another document. Change the content of the document and try again.")
		}
	}
	if len(d.versions) >= 1000 {
		return nil, labapi.Errorf(400, "DocumentVersionLimitExceeded", "The document has too many versions.")
	}
	d.versions = append(d.versions, docVersion{content: in.Content, hash: h, created: s.opts.Now(), schema: schema})
	return map[string]any{"DocumentDescription": s.description(d, len(d.versions))}, nil
}

func (s *Service) lookupDoc(name string) (*document, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.docs[name]
	if !ok {
		return nil, s.docNotFound(name)
	}
	return d, nil
}

func (s *Service) getDocument(ctx context.Context, body []byte) (any, error) {
	if err := s.authorize(ctx, "ssm:GetDocument"); err != nil {
		return nil, err
	}
	var in struct{ Name, DocumentVersion string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	d, err := s.lookupDoc(in.Name)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := version(d, in.DocumentVersion, d.deflt)
	if err != nil {
		return nil, err
	}
	ver := d.versions[v-1]
	return map[string]any{"Name": d.name, "DocumentVersion": strconv.Itoa(v), "Content": ver.content,
		"DocumentType": d.docType, "DocumentFormat": d.format, "Status": "Active", "CreatedDate": epoch(ver.created)}, nil
}

func (s *Service) describeDocument(ctx context.Context, body []byte) (any, error) {
	if err := s.authorize(ctx, "ssm:DescribeDocument"); err != nil {
		return nil, err
	}
	var in struct{ Name, DocumentVersion string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	d, err := s.lookupDoc(in.Name)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := version(d, in.DocumentVersion, d.deflt)
	if err != nil {
		return nil, err
	}
	return map[string]any{"Document": s.description(d, v)}, nil
}

func (s *Service) updateDocumentDefaultVersion(ctx context.Context, body []byte) (any, error) {
	if err := s.authorize(ctx, "ssm:UpdateDocumentDefaultVersion"); err != nil {
		return nil, err
	}
	var in struct{ Name, DocumentVersion string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	d, err := s.lookupDoc(in.Name)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if in.DocumentVersion == "" {
		return nil, labapi.Errorf(400, "ValidationException", "1 validation error detected: Value null at 'documentVersion' failed to satisfy constraint: Member must not be null")
	}
	v, err := version(d, in.DocumentVersion, 0)
	if err != nil {
		return nil, err
	}
	d.deflt = v
	return map[string]any{"Description": map[string]any{"Name": d.name, "DefaultVersion": strconv.Itoa(v)}}, nil
}

// Document returns the content of a document's default version and its
// version numbers (default, latest); ok is false when it does not exist.
func (s *Service) Document(name string) (content string, deflt, latest int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.docs[name]
	if !ok {
		return "", 0, 0, false
	}
	return d.versions[d.deflt-1].content, d.deflt, len(d.versions), true
}

// Documents lists the document names.
func (s *Service) Documents() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for n := range s.docs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
