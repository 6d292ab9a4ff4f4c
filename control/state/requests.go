package state

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/go-memdb"
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
	// MaxRetryRecordBytes and MaxKeyRecordBytes bound the recorded values
	// of each class (results, stored HTTP answers): counts alone would let
	// 50,000 answers of 64 KiB hold gigabytes in every replica's memory
	// and snapshot. Oldest records go first when a class is over.
	MaxRetryRecordBytes = 64 << 20
	MaxKeyRecordBytes   = 128 << 20
)

// CmdRecordAnswer stores the HTTP answer given to a client's
// Idempotency-Key request. It is proposed wrapped in a Request whose id
// names the key (cluster.RecordAnswer), so the request record is the
// stored answer: the first one applied wins, a later proposal for the same
// key gets it back (and one for another request a 422), and it shares the
// key records' bounds (a day, MaxKeyRecords). The body is the answer as the
// API encoded it; the state machine only keeps it.
const CmdRecordAnswer CommandType = 60

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
	// Compact is set by a proposer whose Body came from MarshalBody or
	// json.Marshal: the log entry copies it without checking it again
	// (Encode). Not sent: a forwarded request is checked by the leader.
	Compact bool `json:"-"`
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

// Request records live in their own table, one FIFO per retention class
// (the "fifo" index orders them by class and Raft index). The counter keys
// are constants: evictRequests reads them for every write.
const (
	retryRecordsCounter = "requests/retry"
	keyRecordsCounter   = "requests/key"
	retryBytesCounter   = retryRecordsCounter + "/bytes"
	keyBytesCounter     = keyRecordsCounter + "/bytes"
)

func requestsCounter(key bool) string {
	if key {
		return keyRecordsCounter
	}
	return retryRecordsCounter
}

// requestsBytesCounter sums the recorded values' sizes of a class.
func requestsBytesCounter(key bool) string {
	if key {
		return keyBytesCounter
	}
	return retryBytesCounter
}

func (s *Store) request(id string) *requestRecord {
	v := s.reqs
	if v == nil {
		return one[*requestRecord](s, tRequests, "id", id)
	}
	if r, ok := v.added[id]; ok {
		return r
	}
	if v.removed[id] {
		return nil
	}
	r, err := v.base.First(tRequests, "id", id)
	if err != nil {
		panic("state: requests.id lookup: " + err.Error())
	}
	rec, _ := r.(*requestRecord)
	return rec
}

// requestView answers a write transaction's reads of the request table
// from the table as the transaction found it and the transaction's own
// inserts and deletes, not through the transaction. memdb reads an index
// that the transaction wrote through a clone of it, which drops the
// index's cache of radix nodes already copied (go-immutable-radix
// Txn.Clone): with a lookup and the eviction's walk between the writes of
// consecutive entries, every record inserted or evicted copied its whole
// path from the root again, and the batch shared nothing (a request table
// alone: 10.4 against 5.7 KB allocated per record inserted and evicted).
// The writes still go to the transaction, which stays the table; this is
// only where its reads come from. A batch's records are newer (higher
// Raft index) than every record before it, so per class the FIFO is the
// earlier records still there, then the batch's, in order.
type requestView struct {
	base    *memdb.Txn                // the table before this transaction (read only)
	added   map[string]*requestRecord // records inserted by this transaction and still there
	fifo    [2][]*requestRecord       // the same, per class (retry, key), oldest first
	removed map[string]bool           // earlier records this transaction deleted
}

func newRequestView(db *memdb.MemDB) *requestView {
	return &requestView{base: db.Txn(false), added: map[string]*requestRecord{}, removed: map[string]bool{}}
}

func classOf(key bool) int {
	if key {
		return 1
	}
	return 0
}

func (v *requestView) insert(r *requestRecord) {
	v.added[r.ID] = r
	v.fifo[classOf(r.Key)] = append(v.fifo[classOf(r.Key)], r)
}

func (v *requestView) delete(r *requestRecord) {
	if v.added[r.ID] != r {
		v.removed[r.ID] = true
		return
	}
	delete(v.added, r.ID)
	c := classOf(r.Key)
	if i := slices.Index(v.fifo[c], r); i >= 0 {
		v.fifo[c] = slices.Delete(v.fifo[c], i, i+1)
	}
}

// oldestRequests calls fn with a class's records, oldest first, until fn
// returns false; fn may delete the record it is given.
func (s *Store) oldestRequests(key bool, fn func(r *requestRecord) bool) {
	v := s.reqs
	if v == nil {
		it := s.iter(tRequests, "fifo", false, key)
		for r := it.Next(); r != nil; r = it.Next() {
			if !fn(r.(*requestRecord)) {
				return
			}
		}
		return
	}
	it, err := v.base.Get(tRequests, "fifo", key)
	if err != nil {
		panic("state: requests.fifo walk: " + err.Error())
	}
	for r := it.Next(); r != nil; r = it.Next() {
		if rec := r.(*requestRecord); !v.removed[rec.ID] && !fn(rec) {
			return
		}
	}
	for _, rec := range slices.Clone(v.fifo[classOf(key)]) {
		if !fn(rec) {
			return
		}
	}
}

// addRequest stores a record, replacing one with the same id (a restore).
func (s *Store) addRequest(r *requestRecord) {
	if old := s.request(r.ID); old != nil {
		s.delRequest(old)
	}
	s.insertRequest(r)
}

// insertRequest stores the record of an id the caller just looked up and
// did not find (applyRequest): no second lookup.
func (s *Store) insertRequest(r *requestRecord) {
	s.put(tRequests, r)
	if s.reqs != nil {
		s.reqs.insert(r)
	}
	s.count(requestsCounter(r.Key), 1)
	s.count(requestsBytesCounter(r.Key), len(r.Value))
}

func (s *Store) delRequest(r *requestRecord) {
	s.del(tRequests, r)
	if s.reqs != nil {
		s.reqs.delete(r)
	}
	s.count(requestsCounter(r.Key), -1)
	s.count(requestsBytesCounter(r.Key), -len(r.Value))
}

// requestClasses are the retention classes, in the order evictRequests
// judges them.
var requestClasses = [...]struct {
	key           bool
	max, maxBytes int
	ttl           time.Duration
}{{false, MaxRetryRecords, MaxRetryRecordBytes, RetryRecordTTL}, {true, MaxKeyRecords, MaxKeyRecordBytes, KeyRecordTTL}}

// evictRequests drops records beyond the bounds, judged at the time of the
// request being applied: oldest first, stopping at the first one that is
// fresh with its class within its count and bytes.
//
// It runs after every write, so the common cases skip the walk and its
// iterator: a class with no records (the key class, unless clients send
// Idempotency-Keys), and a class within its count and bytes whose oldest
// record is fresh (one index lookup). Both are the walk's own stopping
// rule applied to the first record, so what is evicted, and at which log
// entry, is exactly what the walk alone would evict.
func (s *Store) evictRequests(now time.Time) {
	for _, c := range requestClasses {
		n := s.counter(requestsCounter(c.key))
		if n == 0 {
			continue
		}
		size := s.counter(requestsBytesCounter(c.key))
		s.oldestRequests(c.key, func(r *requestRecord) bool {
			if n <= c.max && size <= c.maxBytes && now.Sub(r.At) <= c.ttl {
				return false
			}
			s.delRequest(r)
			n, size = n-1, size-len(r.Value)
			return true
		})
	}
}

func init() {
	register(CmdRecordAnswer, func(_ *Store, _ uint64, answer *json.RawMessage) (any, error) { return *answer, nil })
	// Requests are applied by the FSM itself (applyRequest): a business
	// error must undo the inner command yet keep the record of its outcome.
	if _, dup := handlers[CmdRequest]; dup {
		panic("state: command type CmdRequest registered twice")
	}
	handlers[CmdRequest] = nil
}

// decodeFast decodes an envelope as json.Marshal writes it (fields in
// order, no whitespace) to what encoding/json would make of it, or reports
// that it cannot (see decode_rooms.go). The body is checked to be exactly
// one JSON value, as encoding/json would have, and is not copied: it lives
// as long as the log entry, which outlives the batch.
func (c *Request) decodeFast(b []byte) bool {
	p := fastJSON{b: b}
	if !p.lit(`{"id":`) || !p.str(&c.ID) {
		return false
	}
	if p.lit(`,"key":`) && !p.boolean(&c.Key) {
		return false
	}
	if p.lit(`,"bodyHash":`) && !p.str(&c.BodyHash) {
		return false
	}
	var t uint64
	if !p.lit(`,"at":`) || !p.time(&c.At) || !p.lit(`,"type":`) || !p.uint64(&t) || t > 0xff || !p.lit(`,"body":`) {
		return false
	}
	c.Type = CommandType(t)
	if p.i >= len(b)-1 || b[len(b)-1] != '}' {
		return false
	}
	body := b[p.i : len(b)-1]
	if isSpace(body[0]) || isSpace(body[len(body)-1]) || !json.Valid(body) {
		return false
	}
	c.Body = body
	return true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// applyRequest applies a command wrapped with its request id, or answers a
// repeat with the first outcome.
func (b *batch) applyRequest(index uint64, body []byte) (any, error) {
	var c Request
	if err := decodeJSON(body, &c); err != nil {
		panic("state: decode request envelope: " + err.Error())
	}
	if c.ID == "" {
		return nil, errf(CodeInvalid, "request without an id")
	}
	if r := b.s.request(c.ID); r != nil {
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
	run := func(s *Store) (any, error) { return h(s, index, c.Body) }
	v, err := run(b.s)
	rec := &requestRecord{ID: c.ID, Key: c.Key, BodyHash: c.BodyHash, At: c.At, Index: index}
	record := func(s *Store) {
		s.insertRequest(rec) // not there: looked up above, and a redo replays it on the state before it
		s.evictRequests(c.At)
	}
	var se *Error
	switch {
	case err == nil:
		raw := encodeResult(v)
		if len(raw) > maxRecordedValue {
			rec.Dropped = true
		} else {
			rec.Value = raw
		}
		v = json.RawMessage(raw)
		record(b.s)
		b.redo = append(b.redo, func(s *Store) { again(run(s)); record(s) })
	case asError(err, &se):
		// The command said no: none of its changes stay, its outcome does.
		b.rollback()
		rec.Err = se
		record(b.s)
		b.redo = append(b.redo, record)
		v = nil
	default:
		b.rollback()
		return nil, err
	}
	return v, err
}

// encodeResult encodes a command's result for its record and the
// proposer, on every replica: a created room (most writes) by appendRoom,
// byte for byte what encoding/json writes for it
// (TestEncodeResultMatchesEncodingJSON), anything else by encoding/json.
func encodeResult(v any) []byte {
	if c, ok := v.(*CreateRoomResult); ok && c.Room != nil {
		var w rowBuf
		b := append(make([]byte, 0, roomJSONSize(c.Room)+32), `{"room":`...)
		b = w.appendRoom(b, c.Room)
		b = append(b, `,"created":`...)
		b = strconv.AppendBool(b, c.Created)
		if b = append(b, '}'); w.Err == nil {
			return b
		}
	}
	raw, err := json.Marshal(v)
	if err != nil {
		panic("state: encode result: " + err.Error())
	}
	return raw
}

// roomJSONSize is about the length of a room's JSON, so that a result is
// encoded into one allocation of about its size: the retry records keep
// their values (10,000 of them at 2,000 creates/s), and a fixed 1 KiB
// buffer kept twice what a common room needs. A room with escapes or long
// lists grows the buffer once.
func roomJSONSize(r *Room) int {
	// The field names, punctuation, booleans, two times and two indexes.
	n := 260 + len(r.ID) + len(r.RoomID) + len(r.CustomRoomID) + len(r.UserID) + len(r.APIKey) + len(r.GeoFence) +
		len(r.AutoStartConfig) + len(r.MultiComposition)
	if r.Webhook != nil {
		n += 40 + len(r.Webhook.EndPoint)
		for _, e := range r.Webhook.Events {
			n += len(e) + 3
		}
	}
	if r.AutoCloseConfig != nil {
		n += 40 + len(r.AutoCloseConfig.Type)
	}
	for _, l := range [][]string{r.AllowedParticipantIDs, r.Pin.Regions, r.Pin.Jurisdictions} {
		for _, v := range l {
			n += len(v) + 3
		}
	}
	return n
}

func asError(err error, target **Error) bool {
	e, ok := err.(*Error)
	if ok {
		*target = e
	}
	return ok
}

// RequestSeen reports whether a request id has been applied (tests, diagnostics).
func (s *Store) RequestSeen(id string) bool { return s.request(id) != nil }

// RequestAnswer returns the value recorded for a request id that succeeded
// and the body hash it was made with (a stored Idempotency-Key answer).
func (s *Store) RequestAnswer(id string) (value json.RawMessage, bodyHash string, ok bool) {
	r := s.request(id)
	if r == nil || r.Err != nil || r.Dropped || r.Value == nil {
		return nil, "", false
	}
	return r.Value, r.BodyHash, true
}
