package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func request(t *testing.T, id string, key bool, hash string, at time.Time, ct CommandType, body any) Request {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return Request{ID: id, Key: key, BodyHash: hash, At: at, Type: ct, Body: b}
}

// TestRequestAppliedOnce: a repeated request id returns the first outcome
// (value or business error) and changes nothing; an Idempotency-Key reused
// for another request is refused.
func TestRequestAppliedOnce(t *testing.T) {
	f := newTestFSM(t)
	create := CreateRoom{Room: Room{ID: "aaaaaaaaaaaaaaaaaaaaaaaa", RoomID: "abcd-efgh-ijkl", UserID: "u1", APIKey: "k1", CreatedAt: t0}}
	req := request(t, "r-1", false, "", t0, CmdCreateRoom, create)
	first, err := f.apply(CmdRequest, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := f.apply(CmdRequest, req)
	if err != nil {
		t.Fatalf("repeat of an applied create: %v", err)
	}
	if !bytes.Equal(first.(json.RawMessage), again.(json.RawMessage)) {
		t.Fatalf("repeat answered %s, first %s", again, first)
	}
	f.Read(func(s *Store) {
		if s.RoomCount() != 1 {
			t.Fatalf("%d rooms after a repeated create", s.RoomCount())
		}
	})
	// A business error is remembered too: the repeat gets the same error.
	dup := request(t, "r-2", false, "", t0, CmdCreateRoom, create)
	_, err1 := f.apply(CmdRequest, dup)
	_, err2 := f.apply(CmdRequest, dup)
	if !errors.Is(err1, ErrConflict) || !errors.Is(err2, ErrConflict) || err1.Error() != err2.Error() {
		t.Fatalf("errors %v / %v", err1, err2)
	}
	// Idempotency-Key: same hash repeats, another hash is refused.
	keyed := request(t, "k-abc-1", true, "h1", t0, CmdCreateRoom, CreateRoom{Room: Room{ID: "bbbbbbbbbbbbbbbbbbbbbbbb", RoomID: "bbbb-bbbb-bbbb", UserID: "u1"}})
	if _, err := f.apply(CmdRequest, keyed); err != nil {
		t.Fatal(err)
	}
	other := keyed
	other.BodyHash = "h2"
	if _, err := f.apply(CmdRequest, other); !errors.Is(err, &Error{Code: CodeUnprocessable}) {
		t.Fatalf("key reused with another body: %v", err)
	}
}

// TestRequestLogBoundsAndSnapshot: retry records age out after their TTL
// and beyond their count, keyed ones after a day; the log survives a
// snapshot round trip (a restored node still recognises a repeat).
func TestRequestLogBoundsAndSnapshot(t *testing.T) {
	f := newTestFSM(t)
	apply := func(id string, key bool, at time.Time) {
		t.Helper()
		if _, err := f.apply(CmdRequest, request(t, id, key, "", at, CmdSetGlobalEndpoints, SetGlobalEndpoints{})); err != nil {
			t.Fatal(err)
		}
	}
	apply("old-retry", false, t0)
	apply("old-key", true, t0)
	apply("fresh", false, t0.Add(RetryRecordTTL+time.Second))
	f.Read(func(s *Store) {
		if s.RequestSeen("old-retry") || !s.RequestSeen("old-key") || !s.RequestSeen("fresh") {
			t.Fatalf("after the retry TTL: old-retry %v old-key %v fresh %v", s.RequestSeen("old-retry"), s.RequestSeen("old-key"), s.RequestSeen("fresh"))
		}
	})
	apply("later", false, t0.Add(KeyRecordTTL+time.Second))
	f.Read(func(s *Store) {
		if s.RequestSeen("old-key") {
			t.Fatal("an Idempotency-Key record outlived its day")
		}
	})
	for i := 0; i < MaxRetryRecords+5; i++ {
		apply(fmt.Sprintf("n-%d", i), false, t0.Add(KeyRecordTTL+2*time.Second))
	}
	f.Read(func(s *Store) {
		if s.RequestSeen("n-0") || !s.RequestSeen(fmt.Sprintf("n-%d", MaxRetryRecords+4)) || s.counter(requestsCounter(false)) != MaxRetryRecords {
			t.Fatalf("count bound: %d retry records", s.counter(requestsCounter(false)))
		}
	})
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	g := newTestFSM(t)
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	g.index = f.index
	g.Read(func(s *Store) {
		if !s.RequestSeen(fmt.Sprintf("n-%d", MaxRetryRecords+4)) {
			t.Fatal("request log lost in the snapshot")
		}
	})
	if g.AppliedIndex() != f.AppliedIndex() {
		t.Fatalf("restored applied index %d, want %d", g.AppliedIndex(), f.AppliedIndex())
	}
}

// TestRecordAnswerKeepsTheFirst: the answer stored for an Idempotency-Key
// is the first one applied; a later one for the same request gets it back
// (and changes nothing), one for another request is refused, and a binary
// that does not know the command skips it (the flag) instead of stopping.
func TestRecordAnswerKeepsTheFirst(t *testing.T) {
	f := newTestFSM(t)
	answer := func(hash, body string) Request {
		return request(t, "k-abc-answer", true, hash, t0, CmdRecordAnswer|IgnoreUnknownFlag, json.RawMessage(body))
	}
	got, err := f.apply(CmdRequest, answer("h1", `{"status":200,"body":"Zmlyc3Q="}`))
	first, ok := got.(json.RawMessage)
	if err != nil || !ok {
		t.Fatalf("first answer: %v %v, want it stored and returned", got, err)
	}
	again, err := f.apply(CmdRequest, answer("h1", `{"status":404,"body":"c2Vjb25k"}`))
	if av, _ := again.(json.RawMessage); err != nil || !bytes.Equal(first, av) {
		t.Fatalf("second answer for the key: %s %v, want the first %s", again, err, first)
	}
	if _, err := f.apply(CmdRequest, answer("h2", `{"status":200}`)); !errors.Is(err, &Error{Code: CodeUnprocessable}) {
		t.Fatalf("answer for another request under the key: %v, want 422", err)
	}
	f.Read(func(s *Store) {
		v, hash, ok := s.RequestAnswer("k-abc-answer")
		if !ok || hash != "h1" || !bytes.Equal(v, first) {
			t.Fatalf("stored answer %s %q %v", v, hash, ok)
		}
	})
}

// TestRequestLogByteBound: recorded values count against their class's
// byte bound; the oldest go first when it is passed, and the count of
// bytes is rebuilt from a snapshot exactly.
func TestRequestLogByteBound(t *testing.T) {
	f := newTestFSM(t)
	value := `"` + strings.Repeat("v", 200<<10) + `"` // a 200 KiB stored answer
	n := MaxKeyRecordBytes/len(value) + 10
	for i := range n {
		if _, err := f.apply(CmdRequest, request(t, fmt.Sprintf("k-%d-answer", i), true, "h", t0, CmdRecordAnswer|IgnoreUnknownFlag, json.RawMessage(value))); err != nil {
			t.Fatal(err)
		}
	}
	var size int
	f.Read(func(s *Store) {
		size = s.counter(requestsBytesCounter(true))
		if size > MaxKeyRecordBytes || size < MaxKeyRecordBytes-len(value) {
			t.Fatalf("%d bytes of key records, want at most %d (and within one record of it)", size, MaxKeyRecordBytes)
		}
		if s.RequestSeen("k-0-answer") || !s.RequestSeen(fmt.Sprintf("k-%d-answer", n-1)) {
			t.Fatalf("byte bound: oldest kept %v, newest kept %v", s.RequestSeen("k-0-answer"), s.RequestSeen(fmt.Sprintf("k-%d-answer", n-1)))
		}
	})
	g := restoreBytes(t, persistRaw(t, f.FSM))
	g.Read(func(s *Store) {
		if got := s.counter(requestsBytesCounter(true)); got != size {
			t.Fatalf("restored byte count %d, want %d", got, size)
		}
	})
}

// TestRequestEvictionSameOnEveryReplica: which request records are evicted,
// and at which entry, follows the rule of evictRequests exactly (oldest
// first by log index, stopping at the first fresh record while the class
// is within its bounds), however a replica batches the log and whether it
// restored a snapshot half-way. The log mixes both classes, refused
// commands, repeats (which evict nothing), clocks that go backwards (an old
// record behind a fresh oldest one stays) and jumps past both TTLs.
func TestRequestEvictionSameOnEveryReplica(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	type rec struct {
		id   string
		at   time.Time
		size int
	}
	// model: the records each class should hold, in log order.
	model := map[bool][]rec{}
	live := map[string]bool{}
	evicted := map[bool]int{}
	evictModel := func(now time.Time) {
		for _, c := range requestClasses {
			rs, size := model[c.key], 0
			for _, r := range rs {
				size += r.size
			}
			for len(rs) > 0 && (len(rs) > c.max || size > c.maxBytes || now.Sub(rs[0].at) > c.ttl) {
				delete(live, rs[0].id)
				size -= rs[0].size
				rs = rs[1:]
				evicted[c.key]++
			}
			model[c.key] = rs
		}
	}
	var (
		log      []*raft.Log
		ids      []string
		at       = t0
		behind   int // records left behind a fresher oldest one
		repeated int
	)
	for i := range 600 {
		at = at.Add(time.Duration(rng.IntN(120)) * time.Second)
		if i%150 == 149 {
			at = at.Add(KeyRecordTTL + time.Hour)
		}
		when := at
		if rng.IntN(5) == 0 { // another proposer's clock, behind
			when = at.Add(-time.Duration(rng.IntN(15)) * time.Minute)
		}
		key := rng.IntN(3) == 0
		id := fmt.Sprintf("id-%d", i)
		if len(ids) > 0 && rng.IntN(6) == 0 {
			id = ids[rng.IntN(len(ids))] // a repeat, or a reuse after eviction
			key = strings.HasPrefix(id, "k")
		} else if key {
			id = "k" + id
		}
		ids = append(ids, id)
		var r Request
		size := 0
		if rng.IntN(4) == 0 { // refused: the record keeps the error, no value
			r = request(t, id, key, "", when, CmdCreateRoom, CreateRoom{})
		} else {
			value := fmt.Sprintf(`"%s"`, strings.Repeat("v", rng.IntN(64)))
			r = request(t, id, key, "", when, CmdRecordAnswer|IgnoreUnknownFlag, json.RawMessage(value))
			size = len(value)
		}
		if live[id] {
			repeated++ // answered from the record: nothing added, nothing evicted
		} else {
			if rs := model[key]; len(rs) > 0 && when.Sub(rs[0].at) <= requestClasses[btoi(key)].ttl && when.Before(rs[0].at) {
				behind++
			}
			model[key] = append(model[key], rec{id, when, size})
			live[id] = true
			evictModel(when)
		}
		data, err := Encode(CmdRequest, r)
		if err != nil {
			t.Fatal(err)
		}
		log = append(log, &raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: data})
	}
	if evicted[false] < 100 || evicted[true] < 50 || behind < 20 || repeated < 20 {
		t.Fatalf("the log does not exercise eviction: %v evicted, %d records behind a fresher oldest one, %d repeats", evicted, behind, repeated)
	}

	one := NewFSM(nil) // entry by entry
	for _, l := range log {
		one.Apply(l)
	}
	batched := NewFSM(nil) // random batches, restored from its snapshot half-way
	for i := 0; i < len(log); {
		if i >= len(log)/2 && batched.Restores() == 0 {
			batched = restoreBytes(t, persistRaw(t, batched))
		}
		n := min(1+rng.IntN(20), len(log)-i)
		batched.ApplyBatch(log[i : i+n])
		i += n
	}
	for name, f := range map[string]*FSM{"one by one": one, "batched and restored": batched} {
		f.Read(func(s *Store) {
			for _, key := range []bool{false, true} {
				var got, want []string
				for _, r := range all[*requestRecord](s.iter(tRequests, "fifo", false, key)) {
					got = append(got, r.ID)
				}
				for _, r := range model[key] {
					want = append(want, r.id)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("%s, key records %v: holds\n%v\nthe rule keeps\n%v", name, key, got, want)
				}
				if n := s.counter(requestsCounter(key)); n != len(want) {
					t.Fatalf("%s: counter %d for %d records", name, n, len(want))
				}
			}
		})
	}
	if a, b := persist(t, one), persist(t, batched); !bytes.Equal(a, b) {
		t.Fatalf("the replicas' snapshots differ (%d and %d bytes)", len(a), len(b))
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestEncodeResultMatchesEncodingJSON: the recorded result of a room
// create is what encoding/json writes for it, byte for byte (replicas and
// older builds record and compare the same bytes).
func TestEncodeResultMatchesEncodingJSON(t *testing.T) {
	strs := []string{"", "abcd-efgh-ijkl", "a\"b\\c", "<script>&", "\u2028", "bad\xffutf8", "🎥 room"}
	rng := rand.New(rand.NewPCG(3, 4))
	pick := func() string { return strs[rng.IntN(len(strs))] }
	for i := range 2000 {
		r := &Room{ID: pick(), RoomID: pick(), CustomRoomID: pick(), UserID: pick(), APIKey: pick(), Disabled: rng.IntN(2) == 0, GeoFence: pick(),
			MaxParticipants: rng.IntN(3), Pin: PinPolicy{Regions: []string{pick()}}, CreatedAt: t0.Add(time.Duration(rng.IntN(1e9))), UpdatedAt: t0, CreateIndex: rng.Uint64()}
		if rng.IntN(2) == 0 {
			r.Webhook = &RoomWebhook{EndPoint: pick(), Events: []string{pick(), pick()}}
		}
		if rng.IntN(3) == 0 {
			r.AutoStartConfig = json.RawMessage(` {"a": [1, "<b>"] } `)
		}
		for _, v := range []any{&CreateRoomResult{Room: r, Created: i%2 == 0}, &CreateRoomResult{}, r, nil} {
			want, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			if got := encodeResult(v); !bytes.Equal(got, want) {
				t.Fatalf("%T:\n got %s\nwant %s", v, got, want)
			}
		}
	}
}
