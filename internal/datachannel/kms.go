package datachannel

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"

	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/ssmmsg"
)

// KMSClient is the one KMS call a client makes: *kms.Client satisfies it.
type KMSClient interface {
	GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, opts ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error)
}

// Encryption-context keys of a session's data key (§4.4; plugin
// src/encryption/encrypter.go, agent agent/session/crypto/blockcipher.go).
const (
	ContextSessionID = "aws:ssm:SessionId"
	ContextTargetID  = "aws:ssm:TargetId"
)

// kmsState is the session's stream cipher once the KMS handshake ran.
type kmsState struct {
	mu     sync.Mutex
	cipher *ssmmsg.StreamCipher
	keyID  string
}

func (k *kmsState) get() *ssmmsg.StreamCipher {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.cipher
}

// Encrypted reports whether the session's payloads are KMS-encrypted, and with which key.
func (s *Session) Encrypted() (bool, string) {
	s.kms.mu.Lock()
	defer s.kms.mu.Unlock()
	return s.kms.cipher != nil, s.kms.keyID
}

// kmsAction answers a KMSEncryption request as the official plugin does
// (§4.4, plugin src/datachannel/streaming.go ProcessKMSEncryptionHandshakeAction):
// GenerateDataKey for the requested key, 64 bytes, encryption context
// {aws:ssm:SessionId, aws:ssm:TargetId}; the plaintext key becomes the
// stream cipher (client decrypts with [0:32], encrypts with [32:64]) and the
// ciphertext blob goes back as ActionResult.KMSCipherTextKey for the agent
// to Decrypt. A refusal is an exitcode.SessionRefused error naming
// kms:GenerateDataKey and the key, classified by its smithy error code.
func (s *Session) kmsAction(ctx context.Context, params json.RawMessage) (ssmmsg.ProcessedClientAction, error) {
	pa := ssmmsg.ProcessedClientAction{ActionType: ssmmsg.ActionKMSEncryption, ActionStatus: ssmmsg.ActionFailed}
	req, err := ssmmsg.ParseKMSEncryptionRequest(params)
	if err != nil {
		pa.Error = err.Error()
		return pa, exitcode.Wrap(err, exitcode.SessionRefused, "", "the agent's KMS encryption request is malformed")
	}
	if s.cfg.KMS == nil {
		pa.Error = "KMS encryption is not available in this client"
		return pa, exitcode.New(exitcode.SessionRefused, "this kind of session does not support KMS encryption",
			"the agent asked for KMS encryption with key %s", req.KMSKeyID)
	}
	out, err := s.cfg.KMS.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId:         aws.String(req.KMSKeyID),
		NumberOfBytes: aws.Int32(ssmmsg.DataKeySize),
		EncryptionContext: map[string]string{
			ContextSessionID: s.cfg.SessionID,
			ContextTargetID:  s.cfg.TargetID,
		},
	})
	if err != nil {
		pa.Error = "Failed to process action KMSEncryption: " + err.Error()
		return pa, classifyKMS(err, req.KMSKeyID)
	}
	c, err := ssmmsg.NewStreamCipher(out.Plaintext, false, rand.Reader)
	if err != nil {
		pa.Error = err.Error()
		return pa, exitcode.Wrap(err, exitcode.SessionRefused, "", "KMS returned an unusable data key for %s", req.KMSKeyID)
	}
	s.kms.mu.Lock()
	s.kms.cipher, s.kms.keyID = c, req.KMSKeyID
	s.kms.mu.Unlock()
	res, err := json.Marshal(ssmmsg.KMSEncryptionResponse{KMSCipherTextKey: out.CiphertextBlob})
	if err != nil {
		return pa, err
	}
	pa.ActionStatus, pa.ActionResult = ssmmsg.ActionSuccess, res
	return pa, nil
}

// classifyKMS maps a GenerateDataKey failure by its smithy error code: a key
// the caller may not use (or that is missing, disabled, pending deletion)
// refuses the session (exit 17) with a hint that names the permission and
// the key.
func classifyKMS(err error, keyID string) error {
	var ae smithy.APIError
	code := ""
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	switch code {
	case "AccessDeniedException", "AccessDenied":
		return exitcode.Wrap(err, exitcode.SessionRefused,
			fmt.Sprintf("grant kms:GenerateDataKey on %s to your identity (the Session Manager preferences' kmsKeyId), or change it with `devgate prefs set kmsKeyId=…`", keyID),
			"KMS refused kms:GenerateDataKey for the session key %s", keyID)
	case "NotFoundException", "DisabledException", "KMSInvalidStateException", "InvalidKeyUsageException":
		return exitcode.Wrap(err, exitcode.SessionRefused,
			fmt.Sprintf("the preferences' kmsKeyId %s must name an enabled symmetric key you may use with kms:GenerateDataKey; fix it with `devgate prefs set kmsKeyId=…`", keyID),
			"KMS cannot make a data key with %s (%s)", keyID, code)
	}
	return exitcode.Wrap(err, exitcode.SessionRefused, fmt.Sprintf("check kms:GenerateDataKey on %s", keyID),
		"KMS GenerateDataKey for the session key %s failed", keyID)
}

// answerChallenge decrypts the agent's EncChallengeRequest and returns the
// same 64 bytes re-encrypted with the client's key (§4.4). It runs on the
// reader, so the answer is sent from its own goroutine.
func (s *Session) answerChallenge(p []byte) {
	c := s.kms.get()
	ch, err := ssmmsg.ParseEncChallenge(p)
	if err == nil && c == nil {
		err = errors.New("encryption challenge without a KMS handshake")
	}
	var plain []byte
	if err == nil {
		plain, err = c.Open(ch.Challenge)
	}
	var sealed []byte
	if err == nil {
		sealed, err = c.Seal(plain)
	}
	if err != nil {
		s.log.Warn("datachannel: cannot answer the encryption challenge", "err", err)
		s.finish(exitcode.Wrap(err, exitcode.SessionRefused, "", "the KMS encryption challenge failed"))
		return
	}
	body, _ := json.Marshal(ssmmsg.EncChallenge{Challenge: sealed})
	go func() {
		if _, err := s.ep.Send(s.ctx, ssmmsg.PayloadEncChallengeResponse, body); err != nil {
			s.log.Warn("datachannel: EncChallengeResponse not sent", "err", err)
		}
	}()
}

// decrypt returns m's payload (a copy), decrypted when the session is
// encrypted and the type travels encrypted (§4.4). A payload that does not
// authenticate ends the session: the stream cannot be trusted any more.
func (s *Session) decrypt(m *ssmmsg.Message) ([]byte, bool) {
	c := s.kms.get()
	if c == nil || !ssmmsg.Encrypted(m.PayloadType, true) {
		return append([]byte(nil), m.Payload...), true
	}
	p, err := c.Open(m.Payload)
	if err != nil {
		s.log.Warn("datachannel: payload does not decrypt", "seq", m.SequenceNumber, "err", err)
		s.finish(exitcode.Wrap(err, exitcode.TunnelLost, "", "an encrypted payload from the agent did not authenticate"))
		return nil, false
	}
	return p, true
}

// decryptView is decrypt without the copy: the payload aliases m's frame
// when it is not encrypted (the caller copies it before the frame is reused).
func (s *Session) decryptView(m *ssmmsg.Message) ([]byte, bool) {
	if c := s.kms.get(); c == nil || !ssmmsg.Encrypted(m.PayloadType, true) {
		return m.Payload, true
	}
	return s.decrypt(m)
}

// encrypt returns a copy of p to send as Output, encrypted in a KMS session.
func (s *Session) encrypt(p []byte) ([]byte, error) {
	c := s.kms.get()
	if c == nil {
		return append([]byte(nil), p...), nil
	}
	return c.Seal(p)
}
