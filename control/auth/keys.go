package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"fmt"
	"io"
	"time"

	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/control/webhooks"
	"github.com/meridian-video/meridian/shared/ids"
)

// NewKeySpec describes a key to create; empty fields are generated.
type NewKeySpec struct {
	Key    string // public id; default a random UUID
	Secret string // default 32 random bytes, hex
	Name   string
	UserID string // project; default a new one
	Pin    state.PinPolicy
}

// NewAPIKey builds the replicated record for a key, sealing its secrets. It
// returns the record and the plaintext secret (shown to the operator once).
func NewAPIKey(r io.Reader, sealer *Sealer, spec NewKeySpec, now time.Time) (*state.APIKey, string, error) {
	if r == nil {
		r = rand.Reader
	}
	if spec.Key == "" {
		var b [16]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, "", err
		}
		b[6] = b[6]&0x0f | 0x40
		b[8] = b[8]&0x3f | 0x80
		h := hex.EncodeToString(b[:])
		spec.Key = h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
	}
	if spec.Secret == "" {
		var b [32]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, "", err
		}
		spec.Secret = hex.EncodeToString(b[:])
	}
	if len(spec.Secret) < 16 {
		return nil, "", fmt.Errorf("auth: API secret must be at least 16 characters")
	}
	if spec.UserID == "" {
		id, err := ids.NewDocID(r)
		if err != nil {
			return nil, "", err
		}
		spec.UserID = string(id)
	}
	sealed, err := sealer.Seal(r, []byte(spec.Secret))
	if err != nil {
		return nil, "", err
	}
	whsec, err := webhooks.GenerateSecret(r)
	if err != nil {
		return nil, "", err
	}
	whSealed, err := sealer.Seal(r, []byte(whsec))
	if err != nil {
		return nil, "", err
	}
	return &state.APIKey{Key: spec.Key, Name: spec.Name, UserID: spec.UserID, SecretEnc: sealed, SecretHash: sealer.LookupHash(spec.Secret),
		WebhookSecretEnc: whSealed, Pin: spec.Pin, CreatedAt: now.UTC()}, spec.Secret, nil
}

// NewClusterSecrets generates the cluster-wide key material once: the
// Ed25519 join-ticket key, the RSA key for videosdk-signature and the TURN
// REST secret, private halves sealed.
func NewClusterSecrets(r io.Reader, sealer *Sealer) (*state.ClusterSecrets, error) {
	if r == nil {
		r = rand.Reader
	}
	pub, priv, err := ed25519.GenerateKey(r)
	if err != nil {
		return nil, err
	}
	privEnc, err := sealer.Seal(r, priv)
	if err != nil {
		return nil, err
	}
	// The videosdk-signature key is made and encoded by the package that
	// signs with it, so the stored forms are the ones it parses.
	rk, err := webhooks.GenerateRSAKey()
	if err != nil {
		return nil, err
	}
	der, err := webhooks.MarshalPrivateKey(rk)
	if err != nil {
		return nil, err
	}
	rsaEnc, err := sealer.Seal(r, der)
	if err != nil {
		return nil, err
	}
	pubPEM, err := webhooks.EncodePublicKeyPEM(&rk.PublicKey)
	if err != nil {
		return nil, err
	}
	var tb [32]byte
	if _, err := io.ReadFull(r, tb[:]); err != nil {
		return nil, err
	}
	turnEnc, err := sealer.Seal(r, []byte(hex.EncodeToString(tb[:])))
	if err != nil {
		return nil, err
	}
	return &state.ClusterSecrets{TicketPublicKey: pub, TicketPrivateEnc: privEnc,
		WebhookRSAPubPEM: pubPEM, WebhookRSAEnc: rsaEnc, TURNSecretEnc: turnEnc}, nil
}

// OpenedSecrets are the cluster secrets in usable form.
type OpenedSecrets struct {
	TicketKey  ed25519.PrivateKey
	TicketPub  ed25519.PublicKey
	WebhookRSA *rsa.PrivateKey
	RSAPubPEM  string
	TURNSecret string
}

// OpenClusterSecrets unseals the stored secrets.
func OpenClusterSecrets(sealer *Sealer, s *state.ClusterSecrets) (*OpenedSecrets, error) {
	priv, err := sealer.Open(s.TicketPrivateEnc)
	if err != nil {
		return nil, err
	}
	der, err := sealer.Open(s.WebhookRSAEnc)
	if err != nil {
		return nil, err
	}
	rk, err := webhooks.ParsePrivateKey(der)
	if err != nil {
		return nil, err
	}
	turn, err := sealer.Open(s.TURNSecretEnc)
	if err != nil {
		return nil, err
	}
	return &OpenedSecrets{TicketKey: ed25519.PrivateKey(priv), TicketPub: ed25519.PublicKey(s.TicketPublicKey), WebhookRSA: rk, RSAPubPEM: s.WebhookRSAPubPEM, TURNSecret: string(turn)}, nil
}
