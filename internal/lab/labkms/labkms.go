// Package labkms is devgate-lab's AWS KMS: the two calls an encrypted Session
// Manager session makes (protocol doc §4.4), GenerateDataKey by the client
// and Decrypt by the agent, in the AWS JSON 1.1 protocol (X-Amz-Target
// TrentService.<Operation>, AWS KMS API Reference), with the lab's own
// symmetric keys.
//
// Modelled: key ids, key ARNs, alias names and alias ARNs as KeyId;
// NumberOfBytes/KeySpec; the encryption context bound to the ciphertext
// (Decrypt with another context fails with InvalidCiphertextException); a
// key whose policy does not let the lab's principal use it
// (AccessDeniedException naming the action and the key ARN, as KMS words
// it); NotFoundException for unknown keys. Not modelled: grants, key
// rotation, asymmetric keys, multi-Region keys, the ciphertext format of
// real KMS (the blob here is the lab's own).
package labkms

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/devgate/devgate/internal/lab/labapi"
)

// Lab keys: Usable may be used by the lab's principal; Forbidden exists but
// its key policy does not allow the principal to use it.
const (
	UsableAlias    = "alias/devgate-lab"
	ForbiddenAlias = "alias/devgate-lab-forbidden"
	usableID       = UsableKeyID
	forbiddenID    = "0987dcba-09fe-87dc-65ba-ab0987654321"
)

// UsableKeyID is the key id of UsableAlias.
const UsableKeyID = "1234abcd-12ab-34cd-56ef-1234567890ab"

// Principals a key policy names.
const (
	// PrincipalCaller is the lab's IAM user (devgate's credentials).
	PrincipalCaller = "caller"
	// PrincipalInstance is the instance role the agent runs with.
	PrincipalInstance = "instance"
)

type key struct {
	id, alias string
	material  []byte
	allowed   map[string]bool // principals the key policy lets use it
}

// Service is the lab's KMS.
type Service struct {
	region, account, callerArn string
	mu                         sync.Mutex
	keys                       []*key
}

// New returns the lab's KMS with its two keys.
func New(region, account, callerArn string) *Service {
	s := &Service{region: region, account: account, callerArn: callerArn}
	for _, k := range []*key{
		{id: usableID, alias: UsableAlias, allowed: map[string]bool{PrincipalCaller: true, PrincipalInstance: true}},
		{id: forbiddenID, alias: ForbiddenAlias, allowed: map[string]bool{PrincipalInstance: true}},
	} {
		k.material = make([]byte, 32)
		rand.Read(k.material)
		s.keys = append(s.keys, k)
	}
	return s
}

// KeyARN returns the ARN of a lab key given any of its names ("" if unknown).
func (s *Service) KeyARN(keyID string) string {
	if k := s.find(keyID); k != nil {
		return s.arn(k)
	}
	return ""
}

func (s *Service) arn(k *key) string {
	return "arn:aws:kms:" + s.region + ":" + s.account + ":key/" + k.id
}

// find resolves a KeyId in any of the forms KMS accepts.
func (s *Service) find(keyID string) *key {
	prefix := "arn:aws:kms:" + s.region + ":" + s.account + ":"
	keyID = strings.TrimPrefix(keyID, prefix)
	keyID = strings.TrimPrefix(keyID, "key/")
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.keys {
		if keyID == k.id || keyID == k.alias {
			return k
		}
	}
	return nil
}

// Register mounts TrentService.GenerateDataKey and TrentService.Decrypt.
func (s *Service) Register(r *labapi.Registry) {
	r.JSON("TrentService.GenerateDataKey", s.generateDataKey)
	r.JSON("TrentService.Decrypt", s.decrypt)
}

type generateDataKeyInput struct {
	KeyId             string
	NumberOfBytes     int
	KeySpec           string
	EncryptionContext map[string]string
}

func (s *Service) generateDataKey(ctx context.Context, body []byte) (any, error) {
	var in generateDataKeyInput
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, labapi.Errorf(400, "SerializationException", "%v", err)
	}
	n := in.NumberOfBytes
	switch {
	case n != 0 && in.KeySpec != "":
		return nil, labapi.Errorf(400, "ValidationException", "Please specify either number of bytes or key spec.")
	case in.KeySpec == "AES_256":
		n = 32
	case in.KeySpec == "AES_128":
		n = 16
	case in.KeySpec != "":
		return nil, labapi.Errorf(400, "ValidationException", "1 validation error detected: Value '%s' at 'keySpec' failed to satisfy constraint", in.KeySpec)
	case n < 1 || n > 1024:
		return nil, labapi.Errorf(400, "ValidationException", "1 validation error detected: Value '%d' at 'numberOfBytes' failed to satisfy constraint: Member must have value between 1 and 1024", n)
	}
	k, err := s.use(in.KeyId, "kms:GenerateDataKey", PrincipalCaller)
	if err != nil {
		return nil, err
	}
	plain := make([]byte, n)
	rand.Read(plain)
	blob, err := seal(k, plain, in.EncryptionContext)
	if err != nil {
		return nil, labapi.Errorf(500, "KMSInternalException", "%v", err)
	}
	return map[string]any{"KeyId": s.arn(k), "Plaintext": plain, "CiphertextBlob": blob}, nil
}

type decryptInput struct {
	CiphertextBlob    []byte
	KeyId             string
	EncryptionContext map[string]string
}

func (s *Service) decrypt(ctx context.Context, body []byte) (any, error) {
	var in decryptInput
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, labapi.Errorf(400, "SerializationException", "%v", err)
	}
	plain, arn, err := s.Decrypt(in.CiphertextBlob, in.KeyId, in.EncryptionContext, PrincipalCaller)
	if err != nil {
		return nil, err
	}
	return map[string]any{"KeyId": arn, "Plaintext": plain, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}, nil
}

// Decrypt decrypts a blob from GenerateDataKey as principal (the emulated
// agent calls it in-process as PrincipalInstance). keyID may be "".
func (s *Service) Decrypt(blob []byte, keyID string, ec map[string]string, principal string) (plain []byte, keyARN string, err error) {
	if len(blob) < 36+12 {
		return nil, "", labapi.Errorf(400, "InvalidCiphertextException", "")
	}
	id := string(blob[:36])
	if keyID != "" {
		if k := s.find(keyID); k == nil || k.id != id {
			return nil, "", labapi.Errorf(400, "IncorrectKeyException", "The key ID in the request does not identify a CMK that can perform this operation.")
		}
	}
	k, err := s.use(id, "kms:Decrypt", principal)
	if err != nil {
		return nil, "", err
	}
	g, err := gcm(k)
	if err != nil {
		return nil, "", labapi.Errorf(500, "KMSInternalException", "%v", err)
	}
	plain, err = g.Open(nil, blob[36:48], blob[48:], contextAAD(ec))
	if err != nil {
		return nil, "", labapi.Errorf(400, "InvalidCiphertextException", "")
	}
	return plain, s.arn(k), nil
}

// use finds a key and checks that principal may perform action with it.
func (s *Service) use(keyID, action, principal string) (*key, error) {
	if keyID == "" {
		return nil, labapi.Errorf(400, "ValidationException", "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null")
	}
	k := s.find(keyID)
	if k == nil {
		return nil, labapi.Errorf(400, "NotFoundException", "Key '%s' does not exist", keyID)
	}
	if !k.allowed[principal] {
		who := s.callerArn
		if principal == PrincipalInstance {
			who = "arn:aws:sts::" + s.account + ":assumed-role/devgate-lab-instance/i-lab"
		}
		return nil, labapi.Errorf(400, "AccessDeniedException",
			"User: %s is not authorized to perform: %s on resource: %s because no resource-based policy allows the %s action",
			who, action, s.arn(k), action)
	}
	return k, nil
}

func gcm(k *key) (cipher.AEAD, error) {
	b, err := aes.NewCipher(k.material)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// seal makes the lab's ciphertext blob: key id (36) ‖ nonce (12) ‖ AES-GCM,
// bound to the encryption context.
func seal(k *key, plain []byte, ec map[string]string) ([]byte, error) {
	g, err := gcm(k)
	if err != nil {
		return nil, err
	}
	out := append([]byte(k.id), make([]byte, 12)...)
	rand.Read(out[36:])
	return g.Seal(out, out[36:48], plain, contextAAD(ec)), nil
}

// contextAAD is the encryption context in a canonical order.
func contextAAD(ec map[string]string) []byte {
	keys := make([]string, 0, len(ec))
	for k := range ec {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%q=%q;", k, ec[k])
	}
	return []byte(b.String())
}
