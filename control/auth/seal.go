package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// Sealer encrypts secrets before they enter the Raft log, with the cluster key
// every control node is given (flag, env or key file) but which is never
// replicated itself.
type Sealer struct {
	aead cipher.AEAD
	mac  []byte
}

// NewSealer takes a 32-byte cluster key.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("auth: cluster key must be 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	// Derive a separate MAC key so lookup hashes never reuse the AES key.
	m := hmac.New(sha256.New, key)
	m.Write([]byte("meridian secret lookup v1"))
	return &Sealer{aead: aead, mac: m.Sum(nil)}, nil
}

// Seal encrypts plaintext; nonce randomness comes from r (crypto/rand in production).
func (s *Sealer) Seal(r io.Reader, plaintext []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := io.ReadFull(r, nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, plaintext, nil), nil
}

// ErrUnseal means the ciphertext was not sealed with this cluster key.
var ErrUnseal = errors.New("auth: cannot decrypt secret (wrong cluster key?)")

// Open decrypts.
func (s *Sealer) Open(sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return nil, ErrUnseal
	}
	pt, err := s.aead.Open(nil, sealed[:n], sealed[n:], nil)
	if err != nil {
		return nil, ErrUnseal
	}
	return pt, nil
}

// LookupHash is a keyed hash of a secret, stored to find a key by its secret
// (Basic auth, /auth/api-key) without storing the secret.
func (s *Sealer) LookupHash(secret string) string {
	m := hmac.New(sha256.New, s.mac)
	m.Write([]byte(secret))
	return hex.EncodeToString(m.Sum(nil))
}

// TokenHash hashes an opaque bearer/refresh token for storage.
func TokenHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}
