// Package auth verifies VideoSDK-style HS256 JWTs, api.video-style bearer and
// refresh tokens and Basic auth, and scopes requests to rooms and roles.
package auth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/meridian-video/meridian/control/state"
)

// Errors map to HTTP statuses in the API's error handler.
var (
	ErrUnauthenticated = errors.New("unauthenticated")
	ErrForbidden       = errors.New("forbidden")
)

// AuthError carries a human message and whether it is 401 or 403.
type AuthError struct {
	Kind    error // ErrUnauthenticated or ErrForbidden
	Message string
}

func (e *AuthError) Error() string { return e.Message }
func (e *AuthError) Unwrap() error { return e.Kind }

func unauth(format string, a ...any) error {
	return &AuthError{Kind: ErrUnauthenticated, Message: fmt.Sprintf(format, a...)}
}

func forbid(format string, a ...any) error {
	return &AuthError{Kind: ErrForbidden, Message: fmt.Sprintf(format, a...)}
}

// Permission names from the VideoSDK token.
const (
	PermAllowJoin = "allow_join"
	PermAskJoin   = "ask_join"
	PermAllowMod  = "allow_mod"
	RoleCrawler   = "crawler"
	RoleRTC       = "rtc"
)

// Claims are the VideoSDK token claims.
type Claims struct {
	APIKey        string   `json:"apikey"`
	Permissions   []string `json:"permissions"`
	Version       *int     `json:"version,omitempty"`
	RoomID        string   `json:"roomId,omitempty"`
	ParticipantID string   `json:"participantId,omitempty"`
	Roles         []string `json:"roles,omitempty"`
	// Meridian extensions: media scopes (default true when absent).
	CanPublish   *bool `json:"canPublish,omitempty"`
	CanSubscribe *bool `json:"canSubscribe,omitempty"`
	// IdP names the identity-provider user a participant token was minted
	// for (rooms that require single sign-on only admit such tokens).
	IdP *IdPIdentity `json:"idp,omitempty"`
	jwt.RegisteredClaims
}

// IdPIdentity is a user of the OpenID Connect provider.
type IdPIdentity struct {
	Issuer  string `json:"iss"`
	Subject string `json:"sub"`
}

// Principal is an authenticated caller.
type Principal struct {
	Key    *state.APIKey
	Claims Claims
	// Via says how the caller authenticated: jwt, basic, console.
	Via string
	// Operator is the console user behind a console request (nil otherwise).
	Operator *Operator
}

// HasRole reports whether the token names role.
func (p *Principal) HasRole(role string) bool { return slices.Contains(p.Claims.Roles, role) }

// CanUseREST: crawler tokens and tokens without roles (legacy and general-purpose
// tokens) may call the server API; rtc-only tokens may not.
func (p *Principal) CanUseREST() error {
	if len(p.Claims.Roles) == 0 || p.HasRole(RoleCrawler) {
		return nil
	}
	return forbid("this token's roles %v do not allow server API calls (needs role %q)", p.Claims.Roles, RoleCrawler)
}

// CanJoin: a crawler-only token cannot join meetings.
func (p *Principal) CanJoin() error {
	if len(p.Claims.Roles) > 0 && !p.HasRole(RoleRTC) {
		return forbid("this token's roles %v do not allow joining meetings (needs role %q)", p.Claims.Roles, RoleRTC)
	}
	ask := slices.Contains(p.Claims.Permissions, PermAskJoin)
	join := slices.Contains(p.Claims.Permissions, PermAllowJoin)
	mod := slices.Contains(p.Claims.Permissions, PermAllowMod)
	if ask && (join || mod) {
		return forbid("permission ask_join cannot be combined with allow_join or allow_mod")
	}
	if !ask && !join {
		return forbid("token needs permission allow_join or ask_join to join")
	}
	return nil
}

// MediaScopes returns the publish/subscribe scopes (both default to true).
func (p *Principal) MediaScopes() (publish, subscribe bool) {
	publish, subscribe = true, true
	if p.Claims.CanPublish != nil {
		publish = *p.Claims.CanPublish
	}
	if p.Claims.CanSubscribe != nil {
		subscribe = *p.Claims.CanSubscribe
	}
	return
}

// CheckRoom enforces a token's roomId scope. roomIDs are all ids the target
// room is known by (roomId, customRoomId, document id).
func (p *Principal) CheckRoom(roomIDs ...string) error {
	if p.Claims.RoomID == "" {
		return nil
	}
	for _, id := range roomIDs {
		if id != "" && id == p.Claims.RoomID {
			return nil
		}
	}
	return forbid("this token is scoped to room %q", p.Claims.RoomID)
}

// KeyStore is what the authenticator reads (the replicated state).
type KeyStore interface {
	APIKey(key string) (*state.APIKey, bool)
	APIKeyBySecretHash(h string) (*state.APIKey, bool)
	// KeysVersion changes whenever any key may have changed (created,
	// revoked, rotated, a state restored): a key read after taking the
	// version is still current while the version stays the same.
	KeysVersion() uint64
}

// Authenticator verifies credentials. It caches decrypted secrets per key
// version so each request does not pay an AES open.
type Authenticator struct {
	sealer *Sealer
	keys   KeyStore
	now    func() time.Time

	mu    sync.Mutex
	cache map[string]cachedSecret

	// tokens remembers JWTs that passed the full check (verifyCached).
	tokens *lru.Cache[string, verifiedToken]
}

// verifiedToken is a JWT that passed every check, with the key that signed
// it as it was then and the KeysVersion it was read at.
type verifiedToken struct {
	claims Claims
	// key is shared by every request that presents the token: read only,
	// as every Principal's key is.
	key         *state.APIKey
	keysVersion uint64
}

// verifiedTokens bounds the verified-token cache: a customer's backend
// reuses a token for many calls, and 8,192 tokens of a few hundred bytes
// are a few MB.
const verifiedTokens = 8192

// jwtLeeway tolerates small clock differences on exp and nbf.
const jwtLeeway = 5 * time.Second

type cachedSecret struct {
	modifyIndex uint64
	secret      []byte
}

// New builds an authenticator.
func New(sealer *Sealer, keys KeyStore, now func() time.Time) *Authenticator {
	if now == nil {
		now = time.Now
	}
	tokens, err := lru.New[string, verifiedToken](verifiedTokens)
	if err != nil {
		panic(err) // only for a size below 1
	}
	return &Authenticator{sealer: sealer, keys: keys, now: now, cache: map[string]cachedSecret{}, tokens: tokens}
}

// Secret returns a key's plaintext secret (for signing access tokens).
func (a *Authenticator) Secret(k *state.APIKey) ([]byte, error) {
	a.mu.Lock()
	c, ok := a.cache[k.Key]
	a.mu.Unlock()
	if ok && c.modifyIndex == k.ModifyIndex {
		return c.secret, nil
	}
	s, err := a.sealer.Open(k.SecretEnc)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.cache[k.Key] = cachedSecret{modifyIndex: k.ModifyIndex, secret: s}
	a.mu.Unlock()
	return s, nil
}

// MaxTokenBytes bounds what the parser looks at.
const MaxTokenBytes = 8192

// Authenticate reads an Authorization header value: a bare JWT (VideoSDK
// style), "Bearer <jwt>", or "Basic base64(secret:)".
func (a *Authenticator) Authenticate(header string) (*Principal, error) {
	header = strings.TrimSpace(header)
	if header == "" {
		return nil, unauth("missing Authorization header")
	}
	if len(header) > MaxTokenBytes {
		return nil, unauth("Authorization header too long")
	}
	scheme, rest, hasScheme := strings.Cut(header, " ")
	if hasScheme {
		switch strings.ToLower(scheme) {
		case "bearer":
			return a.VerifyJWT(strings.TrimSpace(rest))
		case "basic":
			return a.basic(strings.TrimSpace(rest))
		default:
			return nil, unauth("unsupported Authorization scheme %q", scheme)
		}
	}
	return a.VerifyJWT(header)
}

func (a *Authenticator) basic(b64 string) (*Principal, error) {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, unauth("malformed Basic credentials")
	}
	user, pass, _ := strings.Cut(string(raw), ":")
	secret := user
	if secret == "" {
		secret = pass
	}
	k, err := a.KeyBySecret(secret)
	if err != nil {
		return nil, err
	}
	return &Principal{Key: k, Via: "basic", Claims: Claims{APIKey: k.Key, Permissions: []string{PermAllowJoin, PermAllowMod}}}, nil
}

// KeyBySecret finds an active key by its secret.
func (a *Authenticator) KeyBySecret(secret string) (*state.APIKey, error) {
	if secret == "" {
		return nil, unauth("empty API secret")
	}
	k, ok := a.keys.APIKeyBySecretHash(a.sealer.LookupHash(secret))
	if !ok || k.RevokedAt != nil {
		return nil, unauth("invalid API credentials")
	}
	return k, nil
}

// maxIssuedAtSkew tolerates clocks of token minters a little ahead of ours.
const maxIssuedAtSkew = 30 * time.Second

// numericTimeClaims refuses exp, iat and nbf that are not JSON numbers
// (RFC 7519 NumericDate): the JWT library also reads numeric strings, which
// other verifiers reject, so a token would be valid here and nowhere else.
func numericTimeClaims(token string) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil // the parser reports the malformed token
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(payload, &fields) != nil {
		return nil
	}
	for _, name := range []string{"exp", "iat", "nbf"} {
		v, ok := fields[name]
		if !ok || string(v) == "null" {
			continue
		}
		if c := v[0]; c != '-' && (c < '0' || c > '9') {
			return fmt.Errorf("claim %q must be a number (seconds since 1970)", name)
		}
	}
	return nil
}

// VerifyJWT checks an HS256 token signed by its apikey's secret.
func (a *Authenticator) VerifyJWT(token string) (*Principal, error) {
	if token == "" {
		return nil, unauth("missing token")
	}
	if p, ok := a.verifyCached(token); ok {
		return p, nil
	}
	if err := numericTimeClaims(token); err != nil {
		return nil, unauth("invalid token: %v", err)
	}
	var claims Claims
	var key *state.APIKey
	keysVersion := a.keys.KeysVersion() // before the key is read: see verifyCached
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(a.now), jwt.WithLeeway(jwtLeeway))
	_, err := parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		c := t.Claims.(*Claims)
		if c.APIKey == "" {
			return nil, errors.New("token has no apikey claim")
		}
		k, ok := a.keys.APIKey(c.APIKey)
		if !ok {
			return nil, errors.New("unknown apikey")
		}
		if k.RevokedAt != nil {
			return nil, errors.New("apikey has been revoked")
		}
		key = k
		return a.Secret(k)
	})
	if err != nil {
		switch {
		case errors.Is(err, jwt.ErrTokenExpired):
			return nil, unauth("token has expired")
		case errors.Is(err, jwt.ErrTokenMalformed):
			return nil, unauth("token is malformed")
		case errors.Is(err, jwt.ErrTokenSignatureInvalid):
			return nil, unauth("token signature is invalid")
		case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
			return nil, unauth("token is not valid yet")
		}
		msg := err.Error()
		if i := strings.LastIndex(msg, ": "); i >= 0 {
			msg = msg[i+2:]
		}
		return nil, unauth("invalid token: %s", msg)
	}
	if claims.IssuedAt != nil && claims.IssuedAt.After(a.now().Add(maxIssuedAtSkew)) {
		return nil, unauth("token is not valid yet: issued in the future (iat)")
	}
	if (claims.RoomID != "" || claims.ParticipantID != "" || len(claims.Roles) > 0) && (claims.Version == nil || *claims.Version != 2) {
		return nil, unauth("invalid token: version must be 2 when roomId, participantId or roles are present")
	}
	for _, r := range claims.Roles {
		if r != RoleCrawler && r != RoleRTC {
			return nil, unauth("invalid token: unknown role %q", r)
		}
	}
	for _, p := range claims.Permissions {
		if p != PermAllowJoin && p != PermAskJoin && p != PermAllowMod {
			return nil, unauth("invalid token: unknown permission %q", p)
		}
	}
	a.tokens.Add(token, verifiedToken{claims: claims, key: key, keysVersion: keysVersion})
	return &Principal{Key: key, Claims: claims, Via: "jwt"}, nil
}

// verifyCached accepts a token that passed the full check before, with
// what can change since checked again: the clock against exp, nbf and iat,
// and the signing key, which must still exist unrevoked at the same
// version (any change to a key, a rotated secret included, bumps its
// ModifyIndex). The key is looked up again only when the store's
// KeysVersion moved since the token's was taken; the lookup (a read
// transaction and a copy of the key) was ~5 % of the bytes a create
// allocates on the node that serves it. Parsing, the signature and the
// claim rules are what it skips: they depend on the token's bytes only,
// which are the cache key. They were about a tenth of the server's CPU per
// create. Anything else goes through the full check, which also gives the
// precise error.
func (a *Authenticator) verifyCached(token string) (*Principal, bool) {
	v, ok := a.tokens.Get(token)
	if !ok {
		return nil, false
	}
	now := a.now()
	c := v.claims
	if c.ExpiresAt != nil && !now.Before(c.ExpiresAt.Add(jwtLeeway)) {
		return nil, false
	}
	if c.NotBefore != nil && now.Add(jwtLeeway).Before(c.NotBefore.Time) {
		return nil, false
	}
	if c.IssuedAt != nil && c.IssuedAt.After(now.Add(maxIssuedAtSkew)) {
		return nil, false
	}
	if version := a.keys.KeysVersion(); version != v.keysVersion {
		// Some key changed since: look this one up again (rarely; keys
		// change seldom, and tokens are many).
		k, ok := a.keys.APIKey(c.APIKey)
		if !ok || k.RevokedAt != nil || k.ModifyIndex != v.key.ModifyIndex {
			return nil, false
		}
		v.key, v.keysVersion = k, version
		a.tokens.Add(token, v)
	}
	return &Principal{Key: v.key, Claims: c, Via: "jwt"}, true
}

// MintOptions describe a token to sign.
type MintOptions struct {
	APIKey        string
	Secret        []byte
	Permissions   []string
	Roles         []string
	RoomID        string
	ParticipantID string
	TTL           time.Duration
	Now           time.Time
	CanPublish    *bool
	CanSubscribe  *bool
	IdP           *IdPIdentity
}

// Mint signs a VideoSDK-compatible token (used by `meridian token`, the
// meeting-link API and /auth/api-key).
func Mint(o MintOptions) (string, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	v := 2
	c := Claims{APIKey: o.APIKey, Permissions: o.Permissions, Roles: o.Roles, RoomID: o.RoomID, ParticipantID: o.ParticipantID, Version: &v,
		CanPublish: o.CanPublish, CanSubscribe: o.CanSubscribe, IdP: o.IdP,
		RegisteredClaims: jwt.RegisteredClaims{IssuedAt: jwt.NewNumericDate(o.Now)}}
	if o.TTL > 0 {
		c.ExpiresAt = jwt.NewNumericDate(o.Now.Add(o.TTL))
	}
	if c.Permissions == nil {
		c.Permissions = []string{}
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(o.Secret)
}
