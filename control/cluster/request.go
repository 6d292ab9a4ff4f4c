package cluster

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"sync/atomic"
)

// requestKey is the context key of an Idempotency-Key scope.
type requestKey struct{}

// idempotency carries a client's Idempotency-Key through a handler: every
// write the handler makes gets an id derived from the key and its position,
// so the same request sent again maps onto the same ids.
type idempotency struct {
	base     string
	bodyHash string
	n        atomic.Int64
}

// WithIdempotencyKey scopes ctx to a client's Idempotency-Key: scope names
// whose key it is (the API key), bodyHash identifies the request (method,
// path and body), so reusing the key for another request is refused.
func WithIdempotencyKey(ctx context.Context, scope, key string, bodyHash string) context.Context {
	h := sha256.Sum256([]byte("meridian-idempotency-v1\x00" + scope + "\x00" + key))
	return context.WithValue(ctx, requestKey{}, &idempotency{base: "k-" + hex.EncodeToString(h[:16]), bodyHash: bodyHash})
}

// HashRequest is the body hash stored with an Idempotency-Key.
func HashRequest(method, path string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(method + " " + path + "\x00"))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// nextRequestID returns the id for the next write of ctx's request: the
// Idempotency-Key's derivation, or a fresh random id.
func nextRequestID(ctx context.Context) (id, bodyHash string, key bool) {
	if v, ok := ctx.Value(requestKey{}).(*idempotency); ok {
		n := v.n.Add(1)
		return v.base + "-" + strconv.FormatInt(n, 10), v.bodyHash, true
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "r-" + hex.EncodeToString(b[:]), "", false
}
