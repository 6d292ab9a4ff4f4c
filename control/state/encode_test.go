package state

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// TestEncodeMatchesEncodingJSON: a proposed write's body (MarshalBody) and
// its request envelope (Encode) are written by hand and must be the bytes
// encoding/json writes, so that the FSM's fast decoder takes them and
// every replica applies what json.Marshal would have proposed: rooms with
// every field empty and set, ids and hashes that need escaping, times in
// zones and out of range, and bodies encoding/json would rewrite
// (whitespace, characters it escapes) or refuse (invalid JSON).
func TestEncodeMatchesEncodingJSON(t *testing.T) {
	g := escapingRooms(3)
	rng := g.rng
	bodies := []json.RawMessage{
		nil, json.RawMessage(`{}`), json.RawMessage(`{"a":"b\"c"}`), json.RawMessage(`"x\\"`),
		json.RawMessage(` {"a": 1} `), json.RawMessage("{\"a\":\n1}"), json.RawMessage(`{"a":"<b>"}`), json.RawMessage(`"&"`),
		json.RawMessage("\"\u2028\""), json.RawMessage(`{"a":`), json.RawMessage(`{"a":1}{"b":2}`), json.RawMessage(`"\u003c"`),
		json.RawMessage("\"a\\\" b\""), json.RawMessage(`[1,2,"x y"]`),
	}
	for i := 0; i < 5000; i++ {
		room := g.room()
		if i%2 == 0 {
			room.AutoStartConfig = json.RawMessage(` {"a": [1, "<b>"] } `)
		}
		for _, body := range []any{CreateRoom{Room: *room}, &CreateRoom{Room: *room}} {
			want, werr := json.Marshal(body)
			got, gerr := MarshalBody(body)
			if (werr == nil) != (gerr == nil) || !bytes.Equal(got, want) {
				t.Fatalf("body %d (%T):\n got %s (%v)\nwant %s (%v)", i, body, got, gerr, want, werr)
			}
		}
		req := Request{ID: g.str(), Key: rng.IntN(2) == 0, BodyHash: g.str(), At: g.time(), Type: CommandType(rng.IntN(256)),
			Body: bodies[rng.IntN(len(bodies))]}
		if rng.IntN(2) == 0 {
			if b, err := MarshalBody(CreateRoom{Room: *room}); err == nil {
				req.Body, req.Compact = b, true
			}
		}
		j, werr := json.Marshal(req)
		want := append([]byte{byte(CmdRequest)}, j...)
		for _, v := range []any{req, &req} {
			got, gerr := Encode(CmdRequest, v)
			if (werr == nil) != (gerr == nil) || (werr == nil && !bytes.Equal(got, want)) {
				t.Fatalf("request %d (%T):\n got %q (%v)\nwant %q (%v)", i, v, got, gerr, want, werr)
			}
		}
	}
}

func FuzzEncodeRequest(f *testing.F) {
	f.Add("0123abcd", "<&>", []byte(`{"room":{"id":"x"}}`), int64(0), true)
	f.Add("", "", []byte(" [1, 2] "), int64(-1), false)
	f.Fuzz(func(t *testing.T, id, hash string, body []byte, ns int64, key bool) {
		req := Request{ID: id, Key: key, BodyHash: hash, At: time.Unix(0, ns), Type: CmdCreateRoom, Body: body}
		j, werr := json.Marshal(req)
		got, gerr := Encode(CmdRequest, req)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("encoding/json error %v, Encode error %v", werr, gerr)
		}
		if werr == nil && !bytes.Equal(got, append([]byte{byte(CmdRequest)}, j...)) {
			t.Fatalf("\n got %q\nwant %q", got[1:], j)
		}
	})
}

// TestEncodeRequestMatchesEncode: a proposal's entry built in one pass
// (EncodeRequest) is the entry Encode writes for the same request with the
// body MarshalBody writes, and the request it returns carries exactly that
// body (what a follower forwards and a retry proposes again): room creates
// (appended straight into the entry, escaping ids and times included) and
// any other body (the two steps).
func TestEncodeRequestMatchesEncode(t *testing.T) {
	g := escapingRooms(5)
	rng := g.rng
	for i := 0; i < 3000; i++ {
		room := g.room()
		if i%3 == 0 {
			room.AutoStartConfig = json.RawMessage(` {"a": [1, "<b>"] } `)
		}
		var body any = CreateRoom{Room: *room}
		if i%4 == 0 {
			body = RegisterNode{Node: Node{ID: g.str(), HTTPAddr: g.str()}}
		}
		in := Request{ID: g.str(), Key: rng.IntN(2) == 0, BodyHash: g.str(), At: g.time(), Type: CmdCreateRoom}
		entry, req, err := EncodeRequest(in, body)
		raw, werr := MarshalBody(body)
		var want []byte
		if werr == nil {
			two := in
			two.Body, two.Compact = raw, true
			want, werr = Encode(CmdRequest, two)
		}
		if (err == nil) != (werr == nil) {
			t.Fatalf("request %d: EncodeRequest error %v, the two steps' error %v", i, err, werr)
		}
		if err != nil {
			continue
		}
		if !bytes.Equal(entry, want) {
			t.Fatalf("request %d:\n got %q\nwant %q", i, entry, want)
		}
		if !bytes.Equal(req.Body, raw) || !req.Compact {
			t.Fatalf("request %d: body %q (compact %v), want %q compact", i, req.Body, req.Compact, raw)
		}
		if _, inEntry := body.(CreateRoom); inEntry && cap(req.Body) != len(req.Body) {
			t.Fatalf("request %d: the body inside the entry is not capped (cap %d, len %d): an append would write into the entry", i, cap(req.Body), len(req.Body))
		}
		if req.ID != in.ID || req.Key != in.Key || req.BodyHash != in.BodyHash || !req.At.Equal(in.At) || req.Type != in.Type {
			t.Fatalf("request %d: envelope changed: %+v, want %+v", i, req, in)
		}
	}
}
