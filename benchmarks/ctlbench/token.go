package main

import (
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// crawlerClaims are a VideoSDK v2 server-API token's claims
// (../../../shared/api/videosdk-v2.md, "Authentication"): what a
// customer's backend signs with its project secret to call /v2.
type crawlerClaims struct {
	APIKey      string   `json:"apikey"`
	Permissions []string `json:"permissions"`
	Version     int      `json:"version"`
	Roles       []string `json:"roles"`
	jwt.RegisteredClaims
}

// mintToken signs a crawler token (HS256, the key's secret) valid for ttl
// from now. The client mints its own rather than calling control/auth, so
// it builds from any tree whatever the control packages look like.
func mintToken(apiKey, secret string, now time.Time, ttl time.Duration) (string, error) {
	if apiKey == "" || secret == "" || ttl <= 0 {
		return "", errors.New("token: API key, secret and a positive lifetime are required")
	}
	c := crawlerClaims{APIKey: apiKey, Permissions: []string{"allow_join", "allow_mod"}, Version: 2, Roles: []string{"crawler"},
		RegisteredClaims: jwt.RegisteredClaims{IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl))}}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
}
