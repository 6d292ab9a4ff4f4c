package cluster

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/meridian-video/meridian/control/state"
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
	return newRequestID(time.Now()), "", false
}

// Answer is the HTTP answer a client got for an Idempotency-Key request;
// RecordAnswer stores it and StoredAnswer finds it, so that a repeat gets
// it again without running its handler (whose checks and edge calls would
// see the state the first run left).
type Answer struct {
	Status      int    `json:"status"`
	ContentType string `json:"contentType,omitempty"`
	Body        []byte `json:"body,omitempty"`
}

// newRequestID is "r-", the time in Unix nanoseconds (16 hex digits),
// then 8 random bytes: unique across nodes, and in time order, so every
// replica inserts a new request record beside the last one in the request
// table's radix tree (a random id copied a path of its own from the root
// on each insert; with ordered document ids 18 % fewer bytes are allocated
// per create, BenchmarkApplyCreateRequest ids=ordered against ids=random).
func newRequestID(t time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixNano()))
	_, _ = rand.Read(b[8:])
	return "r-" + hex.EncodeToString(b[:])
}

// answerID names the stored answer of an Idempotency-Key: next to the ids
// of the writes the handler made ("-1", "-2"...), which it can never equal.
func answerID(ctx context.Context) (id, bodyHash string, ok bool) {
	v, ok := ctx.Value(requestKey{}).(*idempotency)
	if !ok {
		return "", "", false
	}
	return v.base + "-answer", v.bodyHash, true
}

// keyReused is the answer to an Idempotency-Key used before with another
// request (HTTP 422), worded as the state machine's.
func keyReused() error {
	return &state.Error{Code: state.CodeUnprocessable, Message: "Idempotency-Key was already used with a different request"}
}

// StoredAnswer returns the answer this node has applied for ctx's
// Idempotency-Key, nil if there is none (or ctx has no key). A key stored
// with another request answers a 422 state.Error. A follower that has not yet
// applied the answer finds none; RecordAnswer then returns the stored one.
func (n *Node) StoredAnswer(ctx context.Context) (*Answer, error) {
	id, hash, ok := answerID(ctx)
	if !ok {
		return nil, nil
	}
	var (
		raw   json.RawMessage
		other string
		found bool
	)
	n.fsm.Read(func(s *state.Store) { raw, other, found = s.RequestAnswer(id) })
	if !found {
		return nil, nil
	}
	if other != hash {
		return nil, keyReused()
	}
	var a Answer
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, fmt.Errorf("cluster: stored answer %s: %w", id, err)
	}
	return &a, nil
}

// RecordAnswer stores a as the answer to ctx's Idempotency-Key unless one
// is stored already, and returns the stored one: the first answer wins, so
// two copies of a request that ran at once (on two nodes, or both before
// either stored its answer) answer alike.
func (n *Node) RecordAnswer(ctx context.Context, a Answer) (*Answer, error) {
	id, hash, ok := answerID(ctx)
	if !ok {
		return nil, errors.New("cluster: RecordAnswer without an Idempotency-Key")
	}
	body, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	// An older binary (rolling upgrade) skips the answer instead of
	// stopping on an unknown command: its repeats run the handler, as before.
	req := state.Request{ID: id, Key: true, BodyHash: hash, At: time.Now().UTC(), Type: state.CmdRecordAnswer | state.IgnoreUnknownFlag, Body: body}
	raw, _, err := n.propose(ctx, req, nil)
	if err != nil {
		return nil, err
	}
	var stored Answer
	if err := json.Unmarshal(raw, &stored); err != nil {
		return nil, fmt.Errorf("cluster: stored answer %s: %w", id, err)
	}
	if stored.Status == 0 {
		return &a, nil // skipped by an older leader: nothing stored
	}
	return &stored, nil
}
