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
