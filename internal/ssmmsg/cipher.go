package ssmmsg

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
)

// DataKeySize is the size of the KMS data key of an encrypted session: the
// client asks GenerateDataKey for 64 bytes (§4.4; plugin src/encryption/encrypter.go).
const DataKeySize = 64

// nonceSize is AES-GCM's standard nonce, sent in front of each ciphertext.
const nonceSize = 12

// ErrDecrypt is returned for a payload that does not authenticate.
var ErrDecrypt = errors.New("ssmmsg: payload does not decrypt")

// StreamCipher encrypts and decrypts the payloads of a KMS session as both
// endpoints do (§4.4; agent agent/session/crypto/blockcipher.go, plugin
// src/encryption/encrypter.go): AES-256-GCM, a random 12-byte nonce
// prepended to each ciphertext, no additional data. Of the 64-byte data key
// the client decrypts with bytes [0:32] and encrypts with [32:64]; the agent
// does the reverse, so each direction has its own key.
type StreamCipher struct {
	seal, open cipher.AEAD
	rand       io.Reader
}

// NewStreamCipher returns the cipher of one side: agentSide selects the
// agent's key halves. rand supplies the nonces (crypto/rand.Reader).
func NewStreamCipher(dataKey []byte, agentSide bool, rand io.Reader) (*StreamCipher, error) {
	if len(dataKey) != DataKeySize {
		return nil, fmt.Errorf("ssmmsg: data key of %d bytes, want %d", len(dataKey), DataKeySize)
	}
	first, second := dataKey[:32], dataKey[32:]
	decKey, encKey := first, second // the client's view
	if agentSide {
		decKey, encKey = second, first
	}
	mk := func(k []byte) (cipher.AEAD, error) {
		b, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(b)
	}
	seal, err := mk(encKey)
	if err != nil {
		return nil, err
	}
	open, err := mk(decKey)
	if err != nil {
		return nil, err
	}
	return &StreamCipher{seal: seal, open: open, rand: rand}, nil
}

// Seal encrypts p for the peer: nonce ‖ ciphertext ‖ tag.
func (c *StreamCipher) Seal(p []byte) ([]byte, error) {
	out := make([]byte, nonceSize, nonceSize+len(p)+c.seal.Overhead())
	if _, err := io.ReadFull(c.rand, out); err != nil {
		return nil, err
	}
	return c.seal.Seal(out, out[:nonceSize], p, nil), nil
}

// Open decrypts a payload from the peer.
func (c *StreamCipher) Open(p []byte) ([]byte, error) {
	if len(p) < nonceSize+c.open.Overhead() {
		return nil, fmt.Errorf("%w: %d bytes is shorter than nonce and tag", ErrDecrypt, len(p))
	}
	out, err := c.open.Open(nil, p[:nonceSize], p[nonceSize:], nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	return out, nil
}
