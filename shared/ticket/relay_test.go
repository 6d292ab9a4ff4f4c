package ticket

import (
	"crypto/ed25519"
	"errors"
	"testing"
	"time"
)

func TestRelayTicket(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	aPub, aPriv, _ := ed25519.GenerateKey(nil)
	bPub, _, _ := ed25519.GenerateKey(nil)
	now := time.Unix(1_700_000_000, 0)
	c := RelayClaims{RoomID: "r1", Epoch: 7, Edges: []RelayEdge{{ID: "a", Region: "eu-west", Key: aPub}, {ID: "b", Region: "eu-central", Key: bPub}},
		AllowedRegions: []string{"eu-west", "eu-central"}, IssuedAt: now.Unix(), ExpiresAt: now.Add(5 * time.Minute).Unix()}
	tok, err := SignRelay(priv, c)
	if err != nil {
		t.Fatal(err)
	}
	got, peer, err := VerifyRelay(pub, tok, "b", "eu-central", now)
	if err != nil || got.Epoch != 7 || peer.ID != "a" {
		t.Fatalf("verify as b: %+v %+v %v", got, peer, err)
	}
	// A join ticket signature must not verify a relay ticket and the reverse.
	if _, err := Verify(pub, tok, "", now); !errors.Is(err, ErrSignature) {
		t.Fatalf("relay ticket accepted as a join ticket: %v", err)
	}
	join, _ := Sign(priv, Claims{RoomID: "r1", IssuedAt: now.Unix(), ExpiresAt: now.Add(time.Minute).Unix()})
	if _, _, err := VerifyRelay(pub, join, "a", "eu-west", now); !errors.Is(err, ErrSignature) {
		t.Fatalf("join ticket accepted as a relay ticket: %v", err)
	}

	outside := c
	outside.Edges = []RelayEdge{{ID: "a", Region: "eu-west", Key: aPub}, {ID: "c", Region: "us-east", Key: bPub}}
	outsideTok, _ := SignRelay(priv, outside)
	cases := []struct {
		name, tok, self, region string
		now                     time.Time
		want                    error
	}{
		{"expired", tok, "a", "eu-west", now.Add(6 * time.Minute), ErrExpired},
		{"third edge", tok, "c", "eu-west", now, ErrNotInPair},
		{"wrong own region", tok, "a", "us-east", now, ErrRegionRefused},
		{"peer region disallowed (checked by a)", outsideTok, "a", "eu-west", now, ErrRegionRefused},
		{"own region disallowed (checked by c)", outsideTok, "c", "us-east", now, ErrRegionRefused},
		{"tampered", "x" + tok[1:], "a", "eu-west", now, ErrSignature},
		{"garbage", "abc", "a", "eu-west", now, ErrMalformed},
	}
	for _, tc := range cases {
		if _, _, err := VerifyRelay(pub, tc.tok, tc.self, tc.region, tc.now); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v want %v", tc.name, err, tc.want)
		}
	}

	// Identity proofs: bound to room, both ids and the nonce.
	sig := ed25519.Sign(aPriv, ProofMessage("r1", "a", "b", "n1"))
	if err := VerifyProof(RelayEdge{ID: "a", Key: aPub}, "r1", "b", "n1", sig); err != nil {
		t.Fatalf("good proof refused: %v", err)
	}
	for name, fn := range map[string]func() error{
		"other nonce":    func() error { return VerifyProof(RelayEdge{ID: "a", Key: aPub}, "r1", "b", "n2", sig) },
		"other room":     func() error { return VerifyProof(RelayEdge{ID: "a", Key: aPub}, "r2", "b", "n1", sig) },
		"other verifier": func() error { return VerifyProof(RelayEdge{ID: "a", Key: aPub}, "r1", "c", "n1", sig) },
		"other key":      func() error { return VerifyProof(RelayEdge{ID: "a", Key: bPub}, "r1", "b", "n1", sig) },
	} {
		if err := fn(); !errors.Is(err, ErrBadProof) {
			t.Errorf("%s: got %v", name, err)
		}
	}

	long := c
	long.ExpiresAt = now.Add(RelayMaxTTL + time.Minute).Unix()
	if _, err := SignRelay(priv, long); err == nil {
		t.Fatal("relay ticket longer than RelayMaxTTL was signed")
	}
	same := c
	same.Edges = []RelayEdge{c.Edges[0], c.Edges[0]}
	if _, err := SignRelay(priv, same); err == nil {
		t.Fatal("relay ticket naming one edge twice was signed")
	}
}

func FuzzVerifyRelay(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	k, _, _ := ed25519.GenerateKey(nil)
	tok, _ := SignRelay(priv, RelayClaims{RoomID: "r", Edges: []RelayEdge{{ID: "a", Key: k}, {ID: "b", Key: k}}, IssuedAt: 1, ExpiresAt: 2})
	f.Add(tok)
	f.Add("a.b")
	f.Fuzz(func(t *testing.T, s string) {
		_, _, _ = VerifyRelay(pub, s, "a", "", time.Unix(0, 0))
	})
}
