package state

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
	"unsafe"
)

// randomRoom is a room with every field set or not, its strings sometimes
// ones the fast decoders leave to encoding/json.
func randomRoom(rng *rand.Rand, plain bool) *Room {
	strs := []string{"", "abcd-efgh-ijkl", "https://hooks.example/x?a=b&c=<d>", "meeting 42", "~!@#$%^*()_+{}|:;'", "\x7f"}
	if !plain {
		strs = append(strs, "a\"b\\c", "tab\there", "\x00\x1f", "héllo", "\u2028", "bad\xffutf8", "🎥")
	}
	g := roomGen{rng: rng, strs: strs, times: []time.Time{{}, t0, t0.Add(123456789), t0.In(time.FixedZone("x", 5*3600+30*60)), time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)}}
	r := g.room()
	pick := g.str
	if !plain && rng.IntN(4) == 0 {
		r.AutoCloseConfig = &AutoCloseConfig{Type: pick(), Duration: 1.5}
	}
	if !plain && rng.IntN(4) == 0 {
		r.AutoStartConfig = json.RawMessage(`{"a":[1]}`)
	}
	return r
}

// TestFastRoomDecodeMatchesEncodingJSON: a room create and its result
// decode to exactly what encoding/json makes of them, and the usual ones
// (json.Marshal's output with plain strings) take the fast path.
func TestFastRoomDecodeMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	fast := 0
	for i := range 4000 {
		plain := i%2 == 0
		r := randomRoom(rng, plain)
		body, err := json.Marshal(CreateRoom{Room: *r})
		if err != nil {
			t.Fatal(err)
		}
		var want, got CreateRoom
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatal(err)
		}
		ok := got.decodeFast(body)
		if plain && !ok {
			t.Fatalf("the usual encoding of a room was left to encoding/json: %s", body)
		}
		if ok {
			fast++
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("decoded %s\n got %+v\nwant %+v", body, got.Room, want.Room)
			}
		}
		// The result, as the FSM encodes it and as encoding/json does.
		res := &CreateRoomResult{Room: r, Created: i%3 == 0}
		plainJSON, _ := json.Marshal(res)
		for _, enc := range [][]byte{encodeResult(res), plainJSON} {
			var want CreateRoomResult
			if err := json.Unmarshal(enc, &want); err != nil {
				t.Fatal(err)
			}
			got, err := DecodeCreateRoomResult(enc)
			if err != nil || !reflect.DeepEqual(*got, want) {
				t.Fatalf("result %s: got %+v (%v), want %+v", enc, got, err, want)
			}
		}
	}
	if fast < 2000 {
		t.Fatalf("only %d of 4000 creates decoded fast", fast)
	}
	// Inputs in another shape are encoding/json's, including its errors.
	for _, b := range []string{` {"room":{}}`, `{"room":null}`, `{"ROOM":{"id":"a"}}`, `{"room":{"id":"a","roomId":"b","userId":"u","apiKey":"k","disabled":false,"pin":{},"createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:00Z","createIndex":01,"modifyIndex":0}}`} {
		var c CreateRoom
		if c.decodeFast([]byte(b)) {
			t.Fatalf("%s decoded fast", b)
		}
	}
	if _, err := DecodeCreateRoomResult([]byte(`{"room":`)); err == nil {
		t.Fatal("a truncated result decoded")
	}
}

// FuzzFastRoomDecode: whatever the fast decoders accept, encoding/json
// accepts too and decodes to the same values.
func FuzzFastRoomDecode(f *testing.F) {
	rng := rand.New(rand.NewPCG(8, 9))
	for range 8 {
		b, _ := json.Marshal(CreateRoom{Room: *randomRoom(rng, true)})
		f.Add(b)
		f.Add(encodeResult(&CreateRoomResult{Room: randomRoom(rng, true), Created: true}))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var got, want CreateRoom
		if got.decodeFast(b) {
			if err := json.Unmarshal(b, &want); err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("%q: fast %+v, encoding/json %+v (%v)", b, got, want, err)
			}
		}
		var wantRes CreateRoomResult
		werr := json.Unmarshal(b, &wantRes)
		res, err := DecodeCreateRoomResult(b)
		if (err == nil) != (werr == nil) || err == nil && !reflect.DeepEqual(*res, wantRes) {
			t.Fatalf("%q: result %+v (%v), encoding/json %+v (%v)", b, res, err, wantRes, werr)
		}
	})
}

// TestFastRequestDecodeMatchesEncodingJSON: a request envelope decodes to
// what encoding/json makes of it; the proposers' envelopes take the fast
// path, others (escapes, whitespace, another shape) go to encoding/json.
func TestFastRequestDecodeMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 11))
	bodies := []string{`{"room":{"id":"a"}}`, `null`, `"x"`, `[1,2]`, `{"a":{"b":[true,false,null]}}`, `12.5e3`}
	ids := []string{"r-0123456789abcdef", "key-<&>-1", "k\"q", "é"}
	for i := range 2000 {
		id := ids[rng.IntN(len(ids))]
		c := Request{ID: id, Key: rng.IntN(2) == 0, At: t0.Add(time.Duration(rng.IntN(1e12))), Type: CommandType(rng.IntN(256)), Body: json.RawMessage(bodies[rng.IntN(len(bodies))])}
		if i%3 == 0 {
			c.BodyHash = "h-" + id
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var want, got Request
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		ok := got.decodeFast(b)
		if !ok && (id == ids[0] || id == ids[1]) {
			t.Fatalf("a proposer's envelope was left to encoding/json: %s", b)
		}
		if ok && !reflect.DeepEqual(got, want) {
			t.Fatalf("%s:\n got %+v\nwant %+v", b, got, want)
		}
	}
	for _, b := range []string{
		`{"id":"a","at":"2026-01-01T00:00:00Z","type":3,"body":{"a":1},"x":2}`, // a field after the body
		`{"id":"a","at":"2026-01-01T00:00:00Z","type":3,"body":{"a":1} }`,
		`{"id":"a","at":"2026-01-01T00:00:00Z","type":256,"body":{}}`,
		`{"id":"a","at":"2026-01-01T00:00:00Z","type":3,"body":}`,
		`{"id":"a","at":"2026-01-01T00:00:00Z","type":3,"body":`,
	} {
		var c Request
		if c.decodeFast([]byte(b)) {
			t.Fatalf("%s decoded fast", b)
		}
	}
}

// FuzzFastRequestDecode: whatever the fast envelope decoder accepts,
// encoding/json decodes to the same request.
func FuzzFastRequestDecode(f *testing.F) {
	for _, body := range []string{`{"room":{"id":"a"}}`, `null`, `[1]`} {
		b, _ := json.Marshal(Request{ID: "r-1", Key: true, BodyHash: "h", At: t0, Type: CmdCreateRoom, Body: json.RawMessage(body)})
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var got, want Request
		if got.decodeFast(b) {
			if err := json.Unmarshal(b, &want); err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("%q: fast %+v, encoding/json %+v (%v)", b, got, want, err)
			}
		}
	})
}

// TestFastRoomDecodeSharesOneStringForTheIDs: the ids of a room decoded
// fast live in one allocation (a stored room is fewer objects to mark), and
// an id with escapes is decoded on its own, to the same values.
func TestFastRoomDecodeSharesOneStringForTheIDs(t *testing.T) {
	for _, r := range []Room{
		{ID: "64b0c2f1a9e4d3b2c1a0f9e8", RoomID: "abcd-efgh-ijkl", CustomRoomID: "meeting-1"},
		{ID: "64b0c2f1a9e4d3b2c1a0f9e8", RoomID: "abcd-efgh-ijkl"},
		{ID: "64b0c2f1a9e4d3b2c1a0f9e8", RoomID: "a<b>&c", CustomRoomID: "meeting-1"},
	} {
		b, err := json.Marshal(CreateRoom{Room: r})
		if err != nil {
			t.Fatal(err)
		}
		var c CreateRoom
		if !c.decodeFast(b) || c.Room.ID != r.ID || c.Room.RoomID != r.RoomID || c.Room.CustomRoomID != r.CustomRoomID {
			t.Fatalf("%s decoded to %+v", b, c.Room)
		}
		next := unsafe.Add(unsafe.Pointer(unsafe.StringData(c.Room.ID)), len(c.Room.ID))
		plain := r.RoomID == "abcd-efgh-ijkl"
		if shared := unsafe.Pointer(unsafe.StringData(c.Room.RoomID)) == next; shared != plain {
			t.Errorf("%s: roomId shares the id's allocation: %v", b, shared)
		}
		if r.CustomRoomID != "" && plain && unsafe.Pointer(unsafe.StringData(c.Room.CustomRoomID)) != unsafe.Add(next, len(r.RoomID)) {
			t.Errorf("%s: customRoomId not in the ids' allocation", b)
		}
	}
}
