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
		if s.apiKey(c.Token.APIKey) == nil {
			return nil, errf(CodeNotFound, "api key not found")
		}
		s.put(tRefresh, &refreshRow{Hash: c.Hash, RefreshToken: c.Token})
		s.bump("refresh", index)
		return nil, nil
	})
	register(CmdUseRefreshToken, func(s *Store, index uint64, c *UseRefreshToken) (any, error) {
		rt := one[*refreshRow](s, tRefresh, "id", c.Hash)
		if rt == nil {
			return nil, errf(CodeForbidden, "refresh token is invalid or already used")
		}
		k := s.apiKey(rt.APIKey)
		if !c.Now.Before(rt.ExpiresAt) || k == nil || k.RevokedAt != nil {
			// Refused, so nothing changes: the dead token stays refused
			// until the prune loop drops it.
			return nil, errf(CodeForbidden, "refresh token expired or its key was revoked")
		}
		s.del(tRefresh, rt)
		next := c.Next.Token
		next.APIKey = rt.APIKey
		s.put(tRefresh, &refreshRow{Hash: c.Next.Hash, RefreshToken: next})
		s.bump("refresh", index)
		return rt.APIKey, nil
	})
	register(CmdPruneRefreshTokens, func(s *Store, index uint64, c *PruneRefreshTokens) (any, error) {
		for _, rt := range expired(s, tRefresh, c.Now, func(rt *refreshRow) time.Time { return rt.ExpiresAt }) {
			s.del(tRefresh, rt)
		}
		s.bump("refresh", index)
		return nil, nil
	})
}

// RefreshTokenCount is for tests and metrics.
func (s *Store) RefreshTokenCount() int {
	n := 0
	it := s.iter(tRefresh, "id", false)
	for v := it.Next(); v != nil; v = it.Next() {
		n++
	}
	return n
}
