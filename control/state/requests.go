package state

import (
	"encoding/json"
	"time"
)

// Exactly-once effects (the "client sessions" of the Raft dissertation,
// §6.3): every write is proposed wrapped in a Request carrying an id made
// where the request entered the cluster. The FSM remembers recent ids with
// the outcome of their first application and answers a repeat with that
// outcome instead of applying again, so a follower that re-sends a write
// after the leader died mid-request (it cannot know whether the first
// attempt committed) never applies it twice nor reports a false conflict.
//
// Two retention classes, both decided from the proposers' timestamps and
// counts (never the clock), so every replica evicts the same records:
// internal retries happen within seconds, client Idempotency-Keys are kept
// a day.
const (
	// MaxRetryRecords and RetryRecordTTL bound the records of internal
	// request ids.
	MaxRetryRecords = 10000
	RetryRecordTTL  = 10 * time.Minute
	// MaxKeyRecords and KeyRecordTTL bound the records of Idempotency-Key
	// requests.
	MaxKeyRecords = 50000
	KeyRecordTTL  = 24 * time.Hour
	// maxRecordedValue: larger results are not kept (a repeat learns that
	// the request was applied, not its result).
	maxRecordedValue = 256 << 10
)

// Request wraps a command with its request id.
type Request struct {
	ID string `json:"id"`
	// Key marks a client Idempotency-Key request (kept longer); BodyHash
	// is the hash of the client's request, which a reuse of the key must match.
	Key      bool            `json:"key,omitempty"`
	BodyHash string          `json:"bodyHash,omitempty"`
	At       time.Time       `json:"at"`
	Type     CommandType     `json:"type"`
	Body     json.RawMessage `json:"body"`
}

// requestRecord is the remembered outcome of a request's first application.
type requestRecord struct {
	ID       string          `json:"id"`
	Key      bool            `json:"key,omitempty"`
	BodyHash string          `json:"bodyHash,omitempty"`
	At       time.Time       `json:"at"`
	Index    uint64          `json:"index"`
	Value    json.RawMessage `json:"value,omitempty"`
	Err      *Error          `json:"err,omitempty"`
	Dropped  bool            `json:"dropped,omitempty"` // the value was too large to keep
}

// requestLog is the FSM's memory of recent requests: a map plus one FIFO
// per retention class.
type requestLog struct {
	byID  map[string]*requestRecord
	retry []string
	keys  []string
}

func newRequestLog() requestLog { return requestLog{byID: map[string]*requestRecord{}} }

func (l *requestLog) add(r *requestRecord) {
	l.byID[r.ID] = r
	if r.Key {
		l.keys = append(l.keys, r.ID)
	} else {
		l.retry = append(l.retry, r.ID)
	}
}

// evict drops records beyond the bounds, judged at the time of the request
// being applied.
func (l *requestLog) evict(now time.Time) {
	trim := func(q []string, max int, ttl time.Duration) []string {
		n := 0
		for n < len(q) {
			r := l.byID[q[n]]
			if r != nil && len(q)-n <= max && now.Sub(r.At) <= ttl {
				break
			}
			delete(l.byID, q[n])
			n++
		}
		if n > 0 {
			q = append(q[:0:0], q[n:]...)
		}
		return q
	}
	l.retry = trim(l.retry, MaxRetryRecords, RetryRecordTTL)
	l.keys = trim(l.keys, MaxKeyRecords, KeyRecordTTL)
}

func init() {
	if _, dup := handlers[CmdRequest]; dup {
		panic("state: command type CmdRequest registered twice")
	}
	handlers[CmdRequest] = func(s *Store, index uint64, body []byte) (any, error) {
		var c Request
		if err := json.Unmarshal(body, &c); err != nil {
			panic("state: decode request envelope: " + err.Error())
		}
		return s.applyRequest(index, &c)
	}
}

func (s *Store) applyRequest(index uint64, c *Request) (any, error) {
	if c.ID == "" {
		return nil, errf(CodeInvalid, "request without an id")
	}
	if r, ok := s.requests.byID[c.ID]; ok {
		if c.BodyHash != r.BodyHash {
			return nil, errf(CodeUnprocessable, "Idempotency-Key was already used with a different request")
		}
		if r.Err != nil {
			return nil, r.Err
		}
		if r.Dropped {
			return nil, errf(CodeConflict, "this request was already applied (its result is too large to repeat)")
		}
		return r.Value, nil
	}
	h, ok := handlers[c.Type&^IgnoreUnknownFlag]
	if !ok || c.Type&^IgnoreUnknownFlag == CmdRequest {
		if c.Type&IgnoreUnknownFlag != 0 {
			return nil, nil
		}
		panic("state: unknown command type in request envelope")
	}
	v, err := h(s, index, c.Body)
	rec := &requestRecord{ID: c.ID, Key: c.Key, BodyHash: c.BodyHash, At: c.At, Index: index}
	var se *Error
	switch {
	case err == nil:
		raw, merr := json.Marshal(v)
		if merr != nil {
			panic("state: encode result: " + merr.Error())
		}
		if len(raw) > maxRecordedValue {
			rec.Dropped = true
		} else {
			rec.Value = raw
		}
		v = json.RawMessage(raw)
	case asError(err, &se):
		rec.Err = se
	default:
		return v, err
	}
	s.requests.add(rec)
	s.requests.evict(c.At)
	return v, err
}

func asError(err error, target **Error) bool {
	e, ok := err.(*Error)
	if ok {
		*target = e
	}
	return ok
}

// RequestSeen reports whether a request id has been applied (tests, diagnostics).
func (s *Store) RequestSeen(id string) bool {
	_, ok := s.requests.byID[id]
	return ok
}
