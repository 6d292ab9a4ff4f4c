package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/cluster"
	"github.com/meridian-video/meridian/control/state"
)

// MaxStoredAnswerBytes bounds the body of an answer kept for an
// Idempotency-Key. API answers to POSTs are a few KiB; a larger one is not
// stored, and its repeat runs the handler again (whose writes still apply
// once, through their request ids).
const MaxStoredAnswerBytes = 64 << 10

// headerReplayed marks an answer that is the stored answer of an earlier
// request with the same Idempotency-Key.
const headerReplayed = "Idempotent-Replayed"

// idempotencyKey makes a POST with an Idempotency-Key answer once: the
// first answer (status, content type, body) is stored in the replicated
// state, per API key and caller authority (keyScope), and a repeat of the same request gets it back before
// its handler runs — the handler's checks and edge calls would see the
// state the first run left (a stopped job, an ended session) and answer
// differently. The same key with another request answers 422. Keys live
// for a day (state.KeyRecordTTL). See docs/control-plane.md.
//
// The handler's own writes keep their key-derived request ids, so two
// copies running at once (neither found a stored answer) apply them once;
// the first answer stored wins and both return it.
func (s *Server) idempotencyKey(c *fiber.Ctx) error {
	key := c.Get("Idempotency-Key")
	if key == "" || c.Method() != fiber.MethodPost {
		return c.Next()
	}
	if len(key) > 255 || strings.IndexFunc(key, func(r rune) bool { return r < 0x21 || r > 0x7e }) >= 0 {
		return &Error{Status: fiber.StatusBadRequest, Message: "header \"Idempotency-Key\" must be 1-255 visible ASCII characters"}
	}
	scope := keyScope(principal(c))
	// The path as the router matched it: /V2/Rooms/ is /v2/rooms.
	hash := cluster.HashRequest(c.Method(), auth.RoutePath(c.Path()), c.Body())
	ctx := cluster.WithIdempotencyKey(c.UserContext(), scope, key, hash)
	c.SetUserContext(ctx)
	c.Set("Idempotency-Key", key)

	// A copy of this request already running here: wait for its answer
	// rather than run the handler beside it.
	leave, err := s.keyed.enter(scope+"\x00"+key, keyWait)
	if err != nil {
		return err
	}
	defer leave()

	stored, err := s.node.StoredAnswer(ctx)
	if err == nil && stored == nil && !s.node.IsLeader() {
		// A follower may not have applied an answer stored through another
		// node yet: catch up once (best effort; the write path holds
		// through elections anyway).
		if s.node.Barrier(ctx) == nil {
			stored, err = s.node.StoredAnswer(ctx)
		}
	}
	if err != nil {
		return err
	}
	if stored != nil {
		return replay(c, stored, true)
	}

	err = c.Next()
	if err != nil {
		// Render the error here: its status and body are the answer to keep.
		if herr := c.App().ErrorHandler(c, err); herr != nil {
			return err
		}
	}
	res := c.Response()
	if !storable(c, err) || len(res.Body()) > MaxStoredAnswerBytes {
		return nil
	}
	mine := cluster.Answer{Status: res.StatusCode(), ContentType: string(res.Header.ContentType()), Body: bytes.Clone(res.Body())}
	stored, rerr := s.node.RecordAnswer(ctx, mine)
	if rerr != nil {
		var se *state.Error
		if errors.As(rerr, &se) {
			// The key was stored for another request meanwhile (422).
			return rerr
		}
		// The work is done and this is its answer; only a repeat could
		// differ (it runs the handler again). Say so and answer.
		s.log.Warn("Idempotency-Key answer not stored", "path", c.Path(), "err", rerr, "request_id", requestID(c))
		return nil
	}
	// Another copy of this request stored its answer first: that one is
	// the answer.
	return replay(c, stored, stored.Status != mine.Status || !bytes.Equal(stored.Body, mine.Body))
}

// keyScope is the namespace of a caller's Idempotency-Keys: its API key
// and what its credentials allow (the claims an answer depends on: room
// and participant scope, roles, permissions, media rights, the signed-in
// identity, the console operator). A stored answer — a join's ticket, a
// room-scoped view — is only ever replayed to a caller with the same
// authority; a token minted again (another expiry) keeps the namespace.
func keyScope(p *auth.Principal) string {
	cl := p.Claims
	scope := struct {
		Key, Room, Participant string
		Roles, Permissions     []string
		Publish, Subscribe     *bool
		IdP                    *auth.IdPIdentity
		Operator               string
	}{p.Key.Key, cl.RoomID, cl.ParticipantID, slices.Sorted(slices.Values(cl.Roles)), slices.Sorted(slices.Values(cl.Permissions)),
		cl.CanPublish, cl.CanSubscribe, cl.IdP, ""}
	if op := p.Operator; op != nil {
		scope.Operator = op.Issuer + "\x00" + op.Subject
	}
	b, _ := json.Marshal(scope)
	return string(b)
}

// storable: answers that a repeat must get again — 2xx, the 4xx that
// describe the request, and 502 (an edge failed the request and the
// outcome is settled: a start's job is failed; answering its repeat with
// the job's state and 200 would hide that). Answers that ask for a retry
// are not kept, so the retry runs: any with Retry-After (503s), 408, 425,
// 429, and 500/504 (nothing is known). Nor is a 422 for a key reused with
// another request (from the state machine): it says nothing about this
// key's request.
func storable(c *fiber.Ctx, err error) bool {
	status := c.Response().StatusCode()
	if len(c.Response().Header.Peek(fiber.HeaderRetryAfter)) > 0 {
		return false
	}
	switch {
	case status >= 200 && status < 300, status == fiber.StatusBadGateway:
		return true
	case status < 400 || status >= 500:
		return false
	case status == fiber.StatusRequestTimeout || status == fiber.StatusTooEarly || status == fiber.StatusTooManyRequests:
		return false
	}
	var se *state.Error
	return !(errors.As(err, &se) && se.Code == state.CodeUnprocessable)
}

// replay writes a stored answer.
func replay(c *fiber.Ctx, a *cluster.Answer, replayed bool) error {
	res := c.Response()
	res.SetStatusCode(a.Status)
	res.Header.SetContentType(a.ContentType)
	if a.ContentType == "" {
		res.Header.Del(fiber.HeaderContentType)
	}
	res.Header.Del(fiber.HeaderRetryAfter)
	res.SetBodyRaw(a.Body)
	if replayed {
		c.Set(headerReplayed, "true")
	}
	return nil
}

// keyWait bounds how long a copy waits for the one running on this node
// (the server's write timeout: that one has answered or failed by then).
const keyWait = 30 * time.Second

// inflightKeys tracks the Idempotency-Keys whose requests run on this node.
// Copies on other nodes are not seen: they run, their writes apply once,
// and the first answer stored is what all of them return.
type inflightKeys struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

// enter waits until no request with key k runs here and claims it; leave
// releases it. Waiting longer than wait answers a retryable 409.
func (f *inflightKeys) enter(k string, wait time.Duration) (leave func(), err error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		running, busy := f.m[k]
		if !busy {
			if f.m == nil {
				f.m = map[string]chan struct{}{}
			}
			done := make(chan struct{})
			f.m[k] = done
			f.mu.Unlock()
			return func() {
				f.mu.Lock()
				delete(f.m, k)
				f.mu.Unlock()
				close(done)
			}, nil
		}
		f.mu.Unlock()
		select {
		case <-running:
		case <-deadline.C:
			return nil, &Error{Status: fiber.StatusConflict, Message: "a request with this Idempotency-Key is still in progress; retry shortly", RetryAfter: 1}
		}
	}
}
