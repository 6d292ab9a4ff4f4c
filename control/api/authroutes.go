package api

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"

	"github.com/gofiber/fiber/v2"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/state"
)

type tokenPair struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// authAPIKey exchanges an API secret for a bearer access token (a crawler JWT
// signed with the key's secret) and a single-use refresh token.
func (s *Server) authAPIKey(c *fiber.Ctx) error {
	var req struct {
		APIKey *string `json:"apiKey"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.APIKey == nil || *req.APIKey == "" {
		return invalidField("apiKey", "is required")
	}
	k, err := s.auth.KeyBySecret(*req.APIKey)
	if err != nil {
		return err
	}
	refresh, hash, err := newOpaqueToken(s.cfg.Rand)
	if err != nil {
		return err
	}
	now := s.cfg.Now().UTC()
	if _, err := s.apply(c, state.CmdPutRefreshToken, state.PutRefreshToken{Hash: hash, Token: state.RefreshToken{APIKey: k.Key, CreatedAt: now, ExpiresAt: now.Add(s.cfg.RefreshTokenTTL)}}); err != nil {
		return err
	}
	return s.issueAccess(c, k, refresh)
}

func (s *Server) authRefresh(c *fiber.Ctx) error {
	var req struct {
		RefreshToken *string `json:"refreshToken"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.RefreshToken == nil || *req.RefreshToken == "" {
		return invalidField("refreshToken", "is required")
	}
	next, nextHash, err := newOpaqueToken(s.cfg.Rand)
	if err != nil {
		return err
	}
	now := s.cfg.Now().UTC()
	raw, err := s.apply(c, state.CmdUseRefreshToken, state.UseRefreshToken{Hash: auth.TokenHash(*req.RefreshToken), Now: now,
		Next: state.PutRefreshToken{Hash: nextHash, Token: state.RefreshToken{CreatedAt: now, ExpiresAt: now.Add(s.cfg.RefreshTokenTTL)}}})
	var se *state.Error
	if errors.As(err, &se) && se.Code == state.CodeForbidden {
		return &auth.AuthError{Kind: auth.ErrUnauthenticated, Message: se.Message}
	}
	if err != nil {
		return err
	}
	var key string
	if err := json.Unmarshal(raw, &key); err != nil {
		return err
	}
	var k *state.APIKey
	s.node.FSM().Read(func(st *state.Store) { k, _ = st.APIKey(key) })
	if k == nil || k.RevokedAt != nil {
		return &auth.AuthError{Kind: auth.ErrUnauthenticated, Message: "the API key of this refresh token was revoked"}
	}
	return s.issueAccess(c, k, next)
}

func (s *Server) issueAccess(c *fiber.Ctx, k *state.APIKey, refresh string) error {
	secret, err := s.auth.Secret(k)
	if err != nil {
		return err
	}
	tok, err := auth.Mint(auth.MintOptions{APIKey: k.Key, Secret: secret, Permissions: []string{auth.PermAllowJoin, auth.PermAllowMod},
		Roles: []string{auth.RoleCrawler}, TTL: s.cfg.AccessTokenTTL, Now: s.cfg.Now()})
	if err != nil {
		return err
	}
	return c.JSON(tokenPair{TokenType: "Bearer", ExpiresIn: int(s.cfg.AccessTokenTTL.Seconds()), AccessToken: tok, RefreshToken: refresh})
}

// newOpaqueToken returns a random token and the hash stored in Raft.
func newOpaqueToken(r io.Reader) (string, string, error) {
	if r == nil {
		r = rand.Reader
	}
	var b [32]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", "", err
	}
	t := base64.RawURLEncoding.EncodeToString(b[:])
	return t, auth.TokenHash(t), nil
}

func asStateErr(err error, target **state.Error) bool { return errors.As(err, target) }
