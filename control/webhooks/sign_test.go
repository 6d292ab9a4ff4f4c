package webhooks

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

func TestSignerHeadersVerify(t *testing.T) {
	s := testSigner(t)
	body, err := Envelope(EventSessionStarted, SessionStarted{"s1", "abcd-efgh-ijkl", At(time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	h, err := s.Headers("msg_1", testSecretRef, at, body)
	if err != nil {
		t.Fatal(err)
	}
	if h.Get(HeaderWebhookID) != "msg_1" || h.Get(HeaderWebhookTimestamp) != strconv.FormatInt(at.Unix(), 10) {
		t.Fatalf("headers %v", h)
	}
	if !strings.HasPrefix(h.Get(HeaderWebhookSignature), "v1,") {
		t.Fatalf("webhook-signature %q does not start with v1,", h.Get(HeaderWebhookSignature))
	}

	wh, err := standardwebhooks.NewWebhook(testSecret())
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(body, h); err != nil {
		t.Fatalf("standard-webhooks Verify: %v", err)
	}
	tampered := append([]byte(nil), body...)
	tampered[len(tampered)-3] ^= 1
	if err := wh.Verify(tampered, h); err == nil {
		t.Fatal("Verify accepted a tampered body")
	}

	pemStr, err := s.PublicKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(pemStr, "-----BEGIN PUBLIC KEY-----\n") || !strings.HasSuffix(pemStr, "-----END PUBLIC KEY-----\n") {
		t.Fatalf("public key is not SPKI PEM:\n%s", pemStr)
	}
	pub, err := ParsePublicKeyPEM(pemStr)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyVideoSDK(pub, body, h.Get(HeaderVideoSDKSignature)); err != nil {
		t.Fatalf("videosdk-signature: %v", err)
	}
	if err := VerifyVideoSDK(pub, tampered, h.Get(HeaderVideoSDKSignature)); err == nil {
		t.Fatal("videosdk-signature accepted a tampered body")
	}
	if sig, _ := base64.StdEncoding.DecodeString(h.Get(HeaderVideoSDKSignature)); len(sig) != 256 {
		t.Fatalf("RSA-2048 signature has %d bytes", len(sig))
	}
}

func TestSignerErrors(t *testing.T) {
	s := testSigner(t)
	if _, err := s.Headers("id", "no-such-key", time.Now(), []byte("{}")); !errors.Is(err, ErrUnknownSecret) {
		t.Errorf("unknown ref: err = %v, want ErrUnknownSecret", err)
	}
	bad, _ := NewSigner(testKey(), StaticSecrets{"k": "whsec_%%%"})
	if _, err := bad.Headers("id", "k", time.Now(), []byte("{}")); !errors.Is(err, ErrUnknownSecret) {
		t.Errorf("malformed secret: err = %v, want ErrUnknownSecret", err)
	}
	if _, err := NewSigner(nil, StaticSecrets{}); !errors.Is(err, ErrConfig) {
		t.Errorf("nil key: %v", err)
	}
	if _, err := NewSigner(testKey(), nil); !errors.Is(err, ErrConfig) {
		t.Errorf("nil secrets: %v", err)
	}
	small := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: new(big.Int).Rsh(testKey().N, 1100), E: 65537}}
	if _, err := NewSigner(small, StaticSecrets{}); !errors.Is(err, ErrConfig) {
		t.Errorf("small key: %v", err)
	}
}

func TestKeyEncodingRoundTrip(t *testing.T) {
	k := testKey()
	der, err := MarshalPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParsePrivateKey(der)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Equal(k) {
		t.Fatal("PKCS#8 round trip changed the key")
	}
	if _, err := ParsePrivateKey([]byte("nope")); err == nil {
		t.Fatal("parsed garbage")
	}
	pemStr, _ := EncodePublicKeyPEM(&k.PublicKey)
	pub, err := ParsePublicKeyPEM(pemStr)
	if err != nil || !pub.Equal(&k.PublicKey) {
		t.Fatalf("SPKI round trip: %v", err)
	}
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(pub)}))
	if pub2, err := ParsePublicKeyPEM(pkcs1); err != nil || !pub2.Equal(pub) {
		t.Fatalf("PKCS#1 PEM: %v", err)
	}
	for _, bad := range []string{"", "not pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"} {
		if _, err := ParsePublicKeyPEM(bad); err == nil {
			t.Errorf("ParsePublicKeyPEM(%q) succeeded", bad)
		}
	}
}

func TestGenerateSecret(t *testing.T) {
	a, err := GenerateSecret(nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := GenerateSecret(nil)
	if a == b || !ValidSecret(a) || !strings.HasPrefix(a, "whsec_") {
		t.Fatalf("secrets %q %q", a, b)
	}
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, "whsec_"))
	if len(raw) != 24 {
		t.Fatalf("secret has %d bytes, want 24", len(raw))
	}
	if _, err := standardwebhooks.NewWebhook(a); err != nil {
		t.Fatalf("standard-webhooks rejects the secret: %v", err)
	}
	for _, bad := range []string{"", "whsec_", "whsec_%%", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 8))} {
		if ValidSecret(bad) {
			t.Errorf("ValidSecret(%q) = true", bad)
		}
	}

	// A given reader is the only source of the secret's bytes, and exactly
	// 24 of them are used.
	src := make([]byte, 30)
	for i := range src {
		src[i] = byte(i)
	}
	r := bytes.NewReader(src)
	got, err := GenerateSecret(r)
	if want := "whsec_" + base64.StdEncoding.EncodeToString(src[:24]); err != nil || got != want {
		t.Fatalf("GenerateSecret(reader) = %q, %v; want %q", got, err, want)
	}
	if r.Len() != 6 {
		t.Fatalf("GenerateSecret read %d bytes, want 24", 30-r.Len())
	}
	if _, err := GenerateSecret(bytes.NewReader(src[:23])); err == nil {
		t.Fatal("a short reader gave a secret")
	}
}
