package state

import "time"

// RefreshToken is stored by the SHA-256 of the token; single use.
type RefreshToken struct {
	APIKey    string    `json:"apiKey"`
	ExpiresAt time.Time `json:"expiresAt"`
	CreatedAt time.Time `json:"createdAt"`
}

// PutRefreshToken stores a new refresh token hash.
type PutRefreshToken struct {
	Hash  string       `json:"hash"`
	Token RefreshToken `json:"token"`
}

// UseRefreshToken consumes a token and stores its successor atomically, so a
// replayed token fails even if two requests race on different nodes.
type UseRefreshToken struct {
	Hash string          `json:"hash"`
	Now  time.Time       `json:"now"`
	Next PutRefreshToken `json:"next"`
}

// PruneRefreshTokens drops expired tokens (leader housekeeping).
type PruneRefreshTokens struct {
	Now time.Time `json:"now"`
}

func init() {
	register(CmdPutRefreshToken, func(s *Store, index uint64, c *PutRefreshToken) (any, error) {
		if _, ok := s.keys[c.Token.APIKey]; !ok {
			return nil, errf(CodeNotFound, "api key not found")
		}
		s.refresh[c.Hash] = &c.Token
		s.bump("refresh", index)
		return nil, nil
	})
	register(CmdUseRefreshToken, func(s *Store, index uint64, c *UseRefreshToken) (any, error) {
		rt, ok := s.refresh[c.Hash]
		if !ok {
			return nil, errf(CodeForbidden, "refresh token is invalid or already used")
		}
		delete(s.refresh, c.Hash)
		s.bump("refresh", index)
		k, ok := s.keys[rt.APIKey]
		if !c.Now.Before(rt.ExpiresAt) || !ok || k.RevokedAt != nil {
			return nil, errf(CodeForbidden, "refresh token expired or its key was revoked")
		}
		next := c.Next.Token
		next.APIKey = rt.APIKey
		s.refresh[c.Next.Hash] = &next
		return rt.APIKey, nil
	})
	register(CmdPruneRefreshTokens, func(s *Store, index uint64, c *PruneRefreshTokens) (any, error) {
		for h, rt := range s.refresh {
			if !c.Now.Before(rt.ExpiresAt) {
				delete(s.refresh, h)
			}
		}
		s.bump("refresh", index)
		return nil, nil
	})
}

// RefreshTokenCount is for tests and metrics.
func (s *Store) RefreshTokenCount() int { return len(s.refresh) }
