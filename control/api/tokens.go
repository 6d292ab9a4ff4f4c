package api

import (
	"crypto/subtle"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/meridian-video/meridian/control/cluster"
)

// The operator-held tokens (admin, edge, cluster) are shared secrets
// compared in constant time. This file is the one place they are checked,
// so that every route answers a missing token and a wrong one the same
// way: an operator with a typo in a flag is told the token is wrong, not
// that it is missing.

// tokenMatches compares a presented token with the expected one in
// constant time; an empty expected token matches nothing.
func tokenMatches(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// BearerToken is a shared-secret check on the Authorization header:
// "Bearer <token>" (the scheme in any case, or left out, as some tools
// send the bare token; a header with another scheme carries none).
type BearerToken struct {
	Want string
	// Missing and Wrong are the 401 messages for no token and for one
	// that is not Want.
	Missing, Wrong string
}

// Check answers nil when the request carries the token.
func (b BearerToken) Check(c *fiber.Ctx) error {
	h := strings.TrimSpace(string(c.Request().Header.Peek(fiber.HeaderAuthorization)))
	switch scheme, rest, hasScheme := strings.Cut(h, " "); {
	case strings.EqualFold(scheme, "Bearer"):
		h = strings.TrimSpace(rest)
	case hasScheme:
		h = "" // another scheme (Basic …): no bearer token
	}
	if h == "" {
		return &Error{Status: fiber.StatusUnauthorized, Message: b.Missing}
	}
	if !tokenMatches(h, b.Want) {
		return &Error{Status: fiber.StatusUnauthorized, Message: b.Wrong}
	}
	return nil
}

// HasClusterToken reports whether a node-to-node request carries the
// cluster token (cluster.TokenHeader); never when the node has none.
func HasClusterToken(c *fiber.Ctx, token string) bool {
	return tokenMatches(c.Get(cluster.TokenHeader), token)
}

// RequireClusterToken guards node-to-node routes.
func RequireClusterToken(token string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if HasClusterToken(c, token) {
			return c.Next()
		}
		if c.Get(cluster.TokenHeader) == "" {
			return &Error{Status: fiber.StatusUnauthorized, Message: "cluster token required"}
		}
		return &Error{Status: fiber.StatusUnauthorized, Message: "wrong cluster token: every control node needs the same --cluster-token"}
	}
}
