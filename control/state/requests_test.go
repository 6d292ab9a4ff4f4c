package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
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
