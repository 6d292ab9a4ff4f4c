package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/webhooks"
	"github.com/meridian-video/meridian/shared/ids"
)

func testSealer(t *testing.T) *Sealer {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	s, err := NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestNewAPIKeyGeneratedFields: what NewAPIKey generates has the formats
// clients rely on (a UUID key, a 24-hex project id, a whsec_ secret that
// Standard Webhooks libraries accept), and secrets are stored only sealed.
func TestNewAPIKeyGeneratedFields(t *testing.T) {
	s := testSealer(t)
	k, secret, err := NewAPIKey(nil, s, NewKeySpec{Name: "n"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(k.Key) != 36 || k.Key[14] != '4' || k.Key[8] != '-' || k.Key[23] != '-' {
		t.Fatalf("key %q is not a v4 UUID", k.Key)
	}
	if !ids.IsDocID(k.UserID) {
		t.Fatalf("project id %q is not 24 hex", k.UserID)
	}
	if b, err := hex.DecodeString(secret); err != nil || len(b) != 32 {
		t.Fatalf("API secret %q is not 32 bytes of hex", secret)
	}
	if k.SecretHash != s.LookupHash(secret) {
		t.Fatal("secret hash does not find the key")
	}
	whsec, err := s.Open(k.WebhookSecretEnc)
	if err != nil {
		t.Fatal(err)
	}
	if !webhooks.ValidSecret(string(whsec)) {
		t.Fatalf("webhook secret %q is not a whsec_ secret", whsec)
	}
	other, _, err := NewAPIKey(nil, s, NewKeySpec{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	otherWh, _ := s.Open(other.WebhookSecretEnc)
	if other.Key == k.Key || other.UserID == k.UserID || string(otherWh) == string(whsec) {
		t.Fatal("two keys share generated values")
	}
}

// TestClusterSecretsRoundTrip: the stored cluster secrets open to usable keys,
// and the served public key is the signing key's (a receiver verifies
// videosdk-signature with it).
func TestClusterSecretsRoundTrip(t *testing.T) {
	s := testSealer(t)
	sec, err := NewClusterSecrets(nil, s)
	if err != nil {
		t.Fatal(err)
	}
	opened, err := OpenClusterSecrets(s, sec)
	if err != nil {
		t.Fatal(err)
	}
	if opened.WebhookRSA.N.BitLen() != webhooks.RSAKeyBits {
		t.Fatalf("RSA key has %d bits", opened.WebhookRSA.N.BitLen())
	}
	pub, err := webhooks.ParsePublicKeyPEM(opened.RSAPubPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(&opened.WebhookRSA.PublicKey) {
		t.Fatal("served public key is not the signing key's")
	}
	msg := []byte("ticket")
	if !ed25519.Verify(opened.TicketPub, msg, ed25519.Sign(opened.TicketKey, msg)) {
		t.Fatal("ticket key pair does not match")
	}
	if b, err := hex.DecodeString(opened.TURNSecret); err != nil || len(b) != 32 {
		t.Fatalf("TURN secret %q is not 32 bytes of hex", opened.TURNSecret)
	}
	if _, err := OpenClusterSecrets(testSealer(t), sec); err == nil {
		t.Fatal("secrets opened with another sealer's key")
	}
}
