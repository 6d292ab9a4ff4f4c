package ticket

import (
	"crypto/ed25519"
	"errors"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	otherPub, _, _ := ed25519.GenerateKey(nil)
	now := time.Unix(1_700_000_000, 0)
	c := Claims{RoomID: "abcd-efgh-ijkl", ParticipantID: "p1", EdgeID: "e1", IssuedAt: now.Unix(), ExpiresAt: now.Add(30 * time.Second).Unix(),
		Permissions: Permissions{Publish: true, Subscribe: true}}
	tok, err := Sign(priv, c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(pub, tok, "e1", now)
	if err != nil || got.RoomID != c.RoomID || !got.Permissions.Publish {
		t.Fatalf("verify: %+v %v", got, err)
	}
	cases := []struct {
		name  string
		pub   ed25519.PublicKey
		tok   string
		edge  string
		now   time.Time
		error error
	}{
		{"other key", otherPub, tok, "e1", now, ErrSignature},
		{"expired", pub, tok, "e1", now.Add(31 * time.Second), ErrExpired},
		{"wrong edge", pub, tok, "e2", now, ErrWrongEdge},
		{"garbage", pub, "abc", "e1", now, ErrMalformed},
		{"tampered", pub, "x" + tok[1:], "e1", now, ErrSignature},
	}
	for _, tc := range cases {
		if _, err := Verify(tc.pub, tc.tok, tc.edge, tc.now); !errors.Is(err, tc.error) {
			t.Errorf("%s: got %v want %v", tc.name, err, tc.error)
		}
	}
	c.ExpiresAt = now.Add(2 * time.Minute).Unix()
	if _, err := Sign(priv, c); err == nil {
		t.Fatal("ticket longer than MaxTTL was signed")
	}
}

func FuzzVerify(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	tok, _ := Sign(priv, Claims{RoomID: "r", IssuedAt: 1, ExpiresAt: 2})
	f.Add(tok)
	f.Add("a.b")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = Verify(pub, s, "", time.Unix(0, 0))
	})
}
