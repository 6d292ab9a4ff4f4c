package state

import (
	"sort"
	"time"
)

// PinPolicy restricts where a key's or room's media and data may land.
type PinPolicy struct {
	Regions       []string `json:"regions,omitempty"`
	Jurisdictions []string `json:"jurisdictions,omitempty"`
}

// Empty reports whether the policy allows everything.
func (p PinPolicy) Empty() bool { return len(p.Regions) == 0 && len(p.Jurisdictions) == 0 }

// APIKey is a project credential. The secret is only ever stored encrypted
// (SecretEnc, sealed with the cluster key) plus a keyed hash for lookups by
// secret (Basic auth, /auth/api-key); plaintext never enters the log.
type APIKey struct {
	Key              string     `json:"key"`
	Name             string     `json:"name,omitempty"`
	UserID           string     `json:"userId"`
	SecretEnc        []byte     `json:"secretEnc"`
	SecretHash       string     `json:"secretHash"`
	WebhookSecretEnc []byte     `json:"webhookSecretEnc"`
	Pin              PinPolicy  `json:"pin"`
	CreatedAt        time.Time  `json:"createdAt"`
	RevokedAt        *time.Time `json:"revokedAt,omitempty"`
	CreateIndex      uint64     `json:"createIndex"`
	ModifyIndex      uint64     `json:"modifyIndex"`
}

// UpsertAPIKey creates a key, or is a no-op returning the existing one when a
// key with the same id and secret hash exists (dev restarts propose it again).
type UpsertAPIKey struct {
	APIKey APIKey `json:"apiKey"`
}

// RevokeAPIKey disables a key; its tokens stop working at once.
type RevokeAPIKey struct {
	Key string    `json:"key"`
	At  time.Time `json:"at"`
}

func init() {
	register(CmdUpsertAPIKey, applyUpsertAPIKey)
	register(CmdRevokeAPIKey, applyRevokeAPIKey)
}

func applyUpsertAPIKey(s *Store, index uint64, c *UpsertAPIKey) (any, error) {
	k := c.APIKey
	if k.Key == "" || k.SecretHash == "" || len(k.SecretEnc) == 0 {
		return nil, errf(CodeInvalid, "api key needs key, secret")
	}
	if old := s.apiKey(k.Key); old != nil {
		if old.SecretHash == k.SecretHash && old.RevokedAt == nil {
			return old.clone(), nil
		}
		return nil, errf(CodeConflict, "api key %q already exists", k.Key)
	}
	if other := one[*APIKey](s, tKeys, "secret", k.SecretHash); other != nil {
		return nil, errf(CodeConflict, "secret already used by key %q", other.Key)
	}
	k.UserID = intern(k.UserID)
	k.CreateIndex, k.ModifyIndex = index, index
	s.put(tKeys, &k)
	s.bump("keys", index)
	return k.clone(), nil
}

func applyRevokeAPIKey(s *Store, index uint64, c *RevokeAPIKey) (any, error) {
	k := s.apiKey(c.Key)
	if k == nil {
		return nil, errf(CodeNotFound, "api key %q not found", c.Key)
	}
	if k.RevokedAt == nil {
		k = k.clone()
		at := c.At
		k.RevokedAt = &at
		k.ModifyIndex = index
		s.put(tKeys, k) // leaves the secret index: a revoked key no longer authenticates
		// Refresh tokens of a revoked key die with it.
		for _, rt := range all[*refreshRow](s.iter(tRefresh, "apiKey", false, c.Key)) {
			s.del(tRefresh, rt)
		}
		s.bump("keys", index)
	}
	return k.clone(), nil
}

func (k *APIKey) clone() *APIKey {
	c := *k
	return &c
}

func (s *Store) apiKey(key string) *APIKey { return one[*APIKey](s, tKeys, "id", key) }

// APIKey returns a key by its public id (revoked keys included).
func (s *Store) APIKey(key string) (*APIKey, bool) {
	k := s.apiKey(key)
	if k == nil {
		return nil, false
	}
	return k.clone(), true
}

// APIKeyBySecretHash finds an active key by the keyed hash of its secret.
func (s *Store) APIKeyBySecretHash(h string) (*APIKey, bool) {
	k := one[*APIKey](s, tKeys, "secret", h)
	if k == nil {
		return nil, false
	}
	return k.clone(), true
}

// APIKeys lists every key, oldest first (operators have a handful).
func (s *Store) APIKeys() []*APIKey {
	out := []*APIKey{}
	for _, k := range all[*APIKey](s.iter(tKeys, "id", false)) {
		out = append(out, k.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreateIndex < out[j].CreateIndex })
	return out
}
