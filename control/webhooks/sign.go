package webhooks

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Header names on every delivery.
const (
	HeaderWebhookID         = standardwebhooks.HeaderWebhookID        // "webhook-id"
	HeaderWebhookTimestamp  = standardwebhooks.HeaderWebhookTimestamp // "webhook-timestamp"
	HeaderWebhookSignature  = standardwebhooks.HeaderWebhookSignature // "webhook-signature"
	HeaderVideoSDKSignature = "videosdk-signature"
)

// SecretPrefix starts every Standard Webhooks signing secret.
const SecretPrefix = "whsec_"

// RSAKeyBits is the size of generated videosdk-signature keys.
const RSAKeyBits = 2048

// Secrets resolves a delivery's SecretRef (the API key that owns the room) to
// its Standard Webhooks secret ("whsec_..."). The Raft-backed store
// implements it by unsealing the key's WebhookSecretEnc. It must return an
// error wrapping ErrUnknownSecret when the key no longer exists or is
// revoked, so the delivery fails instead of retrying for MaxAge. Safe for
// concurrent use.
type Secrets interface {
	WebhookSecret(ref string) (string, error)
}

// StaticSecrets is a Secrets backed by a map (dev mode, tests).
type StaticSecrets map[string]string

// WebhookSecret implements Secrets.
func (s StaticSecrets) WebhookSecret(ref string) (string, error) {
	sec, ok := s[ref]
	if !ok {
		return "", fmt.Errorf("%w: %q", ErrUnknownSecret, ref)
	}
	return sec, nil
}

// Signer produces the signature headers of a delivery. It holds the
// deployment's RSA key (one per deployment, persisted in replicated state) and
// looks up per-key HMAC secrets through Secrets.
type Signer struct {
	key     *rsa.PrivateKey
	secrets Secrets
}

// NewSigner returns a Signer. key signs videosdk-signature and must be at
// least 2048 bits; secrets resolves whsec_ secrets.
func NewSigner(key *rsa.PrivateKey, secrets Secrets) (*Signer, error) {
	if key == nil {
		return nil, fmt.Errorf("%w: nil RSA key", ErrConfig)
	}
	if key.N.BitLen() < RSAKeyBits {
		return nil, fmt.Errorf("%w: RSA key has %d bits, need at least %d", ErrConfig, key.N.BitLen(), RSAKeyBits)
	}
	if secrets == nil {
		return nil, fmt.Errorf("%w: nil Secrets", ErrConfig)
	}
	return &Signer{key: key, secrets: secrets}, nil
}

// PublicKeyPEM returns the SPKI PEM served at GET /v2/public/rsa-public-key.
func (s *Signer) PublicKeyPEM() (string, error) { return EncodePublicKeyPEM(&s.key.PublicKey) }

// SignBody returns the videosdk-signature value: base64 of an RSA PKCS#1 v1.5
// SHA-256 signature over body.
func (s *Signer) SignBody(body []byte) (string, error) {
	sum := sha256.Sum256(body)
	sig, err := rsa.SignPKCS1v15(nil, s.key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("webhooks: rsa sign: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// Headers returns the four signature headers for one attempt of a delivery:
// webhook-id (stable across retries), webhook-timestamp (the attempt time, so
// receivers' replay window applies to the attempt), webhook-signature
// ("v1,<base64 HMAC-SHA256>" over "id.timestamp.body") and videosdk-signature.
func (s *Signer) Headers(id, secretRef string, at time.Time, body []byte) (http.Header, error) {
	secret, err := s.secrets.WebhookSecret(secretRef)
	if err != nil {
		return nil, err
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return nil, fmt.Errorf("%w: secret of %q is malformed", ErrUnknownSecret, secretRef)
	}
	hmacSig, err := wh.Sign(id, at, body)
	if err != nil {
		return nil, fmt.Errorf("webhooks: sign: %w", err)
	}
	rsaSig, err := s.SignBody(body)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set(HeaderWebhookID, id)
	h.Set(HeaderWebhookTimestamp, strconv.FormatInt(at.Unix(), 10))
	h.Set(HeaderWebhookSignature, hmacSig)
	h.Set(HeaderVideoSDKSignature, rsaSig)
	return h, nil
}

// VerifyVideoSDK checks a videosdk-signature value against body, as a receiver
// does. It exists for tests and for the operator's "send test event" checks.
func VerifyVideoSDK(pub *rsa.PublicKey, body []byte, signature string) error {
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		return fmt.Errorf("webhooks: videosdk-signature is not base64: %w", err)
	}
	sum := sha256.Sum256(body)
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig)
}

// GenerateRSAKey returns a new 2048-bit key for videosdk-signature.
func GenerateRSAKey() (*rsa.PrivateKey, error) {
	k, err := rsa.GenerateKey(rand.Reader, RSAKeyBits)
	if err != nil {
		return nil, fmt.Errorf("webhooks: generate RSA key: %w", err)
	}
	return k, nil
}

// EncodePublicKeyPEM encodes pub as SubjectPublicKeyInfo PEM
// ("-----BEGIN PUBLIC KEY-----"), which Node, Java, PHP and Python
// (cryptography) all accept.
func EncodePublicKeyPEM(pub *rsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("webhooks: encode public key: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}

// ParsePublicKeyPEM parses an SPKI ("PUBLIC KEY") or PKCS#1 ("RSA PUBLIC KEY")
// PEM RSA public key.
func ParsePublicKeyPEM(s string) (*rsa.PublicKey, error) {
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		return nil, errors.New("webhooks: no PEM block")
	}
	switch b.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("webhooks: parse public key: %w", err)
		}
		rk, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("webhooks: public key is %T, not RSA", k)
		}
		return rk, nil
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("webhooks: parse public key: %w", err)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("webhooks: unexpected PEM block %q", b.Type)
	}
}

// MarshalPrivateKey encodes k as PKCS#8 DER (the form sealed into replicated
// state).
func MarshalPrivateKey(k *rsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("webhooks: encode private key: %w", err)
	}
	return der, nil
}

// ParsePrivateKey decodes a PKCS#8 DER RSA private key.
func ParsePrivateKey(der []byte) (*rsa.PrivateKey, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("webhooks: parse private key: %w", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("webhooks: private key is %T, not RSA", k)
	}
	return rk, nil
}

// GenerateSecret returns a new Standard Webhooks secret: "whsec_" followed by
// 24 bytes from r (crypto/rand when r is nil) in standard base64. The reader
// is a parameter so that callers with an injected randomness source (API key
// creation) draw every secret from it.
func GenerateSecret(r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	var b [24]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("webhooks: generate secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b[:]), nil
}

// ValidSecret reports whether s is a well-formed whsec_ secret.
func ValidSecret(s string) bool {
	rest, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(rest)
	return err == nil && len(b) >= 24 && len(b) <= 64
}
