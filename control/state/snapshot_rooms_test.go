package state

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// TestAppendRoomMatchesEncodingJSON: the rooms of a snapshot are written
// by hand, and must be the bytes encoding/json writes for them (the
// golden files and every earlier snapshot were written by it): every
// field empty and set, strings that need escaping, times in zones.
func TestAppendRoomMatchesEncodingJSON(t *testing.T) {
	g := escapingRooms(1)
	rng, pick := g.rng, g.str
	var w rowBuf
	for i := 0; i < 5000; i++ {
		r := g.room()
		if rng.IntN(2) == 0 {
			r.AutoCloseConfig = &AutoCloseConfig{Type: pick(), Duration: []float64{0, 60, 1.5, 1e21, 1e-7}[rng.IntN(5)]}
		}
		if rng.IntN(2) == 0 {
			r.AutoStartConfig = json.RawMessage(` {"a": [1, "<b>"] } `)
		}
		if rng.IntN(3) == 0 {
			r.MultiComposition = json.RawMessage(`{"layout":"GRID"}`)
		}
		want, werr := json.Marshal(r)
		got := append([]byte(nil), w.room(r)...)
		if werr != nil {
			if w.Err == nil {
				t.Fatalf("encoding/json refuses %+v (%v); the appender did not", r, werr)
			}
			w.Err = nil
			continue
		}
		if w.Err != nil {
			t.Fatalf("appender error %v for %+v", w.Err, r)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("room %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

// escapingRooms makes rooms from strings and times that exercise every
// rule of encoding/json the hand-written encoders follow: escapes, HTML
// characters, invalid UTF-8, line separators, zones, years out of range.
func escapingRooms(seed uint64) roomGen {
	return roomGen{
		rng:   rand.New(rand.NewPCG(seed, seed+1)),
		strs:  []string{"", "abcd-efgh-ijkl", "a\"b\\c", "<script>&", "a<b", "x>y", "q&r", "tab\there", "\x00\x1f", "héllo", "\u2028\u2029", "bad\xffutf8", "🎥 room", "\u202eevil"},
		times: []time.Time{{}, t0, t0.Add(123456789), t0.In(time.FixedZone("x", 5*3600+30*60)), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)},
	}
}

// roomGen makes random rooms for the encoder and decoder tests: every
// field empty or set, strings and times from the given sets.
type roomGen struct {
	rng   *rand.Rand
	strs  []string
	times []time.Time
}

func (g roomGen) str() string { return g.strs[g.rng.IntN(len(g.strs))] }

func (g roomGen) list() []string {
	switch g.rng.IntN(3) {
	case 0:
		return nil
	case 1:
		return []string{}
	}
	return []string{g.str(), g.str()}
}

func (g roomGen) time() time.Time { return g.times[g.rng.IntN(len(g.times))] }

// room sets the fields every test varies; callers add their own extras.
func (g roomGen) room() *Room {
	rng := g.rng
	r := &Room{ID: g.str(), RoomID: g.str(), CustomRoomID: g.str(), UserID: g.str(), APIKey: g.str(), Disabled: rng.IntN(2) == 0,
		GeoFence: g.str(), AllowedParticipantIDs: g.list(), MaxParticipants: rng.IntN(5) - 2, Pin: PinPolicy{Regions: g.list(), Jurisdictions: g.list()},
		RequireSSO: rng.IntN(2) == 0, CreatedAt: g.time(), UpdatedAt: g.time(),
		CreateIndex: []uint64{0, 7, rng.Uint64()}[rng.IntN(3)], ModifyIndex: uint64(rng.IntN(10))}
	if rng.IntN(2) == 0 {
		r.Webhook = &RoomWebhook{EndPoint: g.str(), Events: g.list()}
	}
	return r
}

func FuzzAppendRoom(f *testing.F) {
	f.Add("abcd-efgh-ijkl", "<&>", "https://h.example/x?a=b", "eu", int64(0))
	f.Fuzz(func(t *testing.T, id, custom, url, region string, ns int64) {
		r := &Room{ID: id, RoomID: id, CustomRoomID: custom, UserID: region, Webhook: &RoomWebhook{EndPoint: url, Events: []string{custom}},
			Pin: PinPolicy{Regions: []string{region}}, CreatedAt: time.Unix(0, ns).UTC(), UpdatedAt: time.Unix(0, ns)}
		want, err := json.Marshal(r)
		var w rowBuf
		got := w.room(r)
		if err != nil || w.Err != nil {
			if (err == nil) != (w.Err == nil) {
				t.Fatalf("encoding/json error %v, appender error %v", err, w.Err)
			}
			return
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	})
}

// TestSnapshotIsS2AndPlainJSONRestores: Persist writes an S2 stream much
// smaller than its JSON, and a node restores both that and the plain JSON
// snapshots earlier builds left on disk, to the same state.
func TestSnapshotIsS2AndPlainJSONRestores(t *testing.T) {
	f := newTestFSM(t)
	fillAllTables(t, f)
	for i := 0; i < 2000; i++ {
		r := benchRoom(i)
		r.ID = "r" + r.ID[1:]
		if _, err := f.apply(CmdCreateRoom, CreateRoom{Room: r}); err != nil {
			t.Fatal(err)
		}
	}
	raw := persistRaw(t, f.FSM)
	if !bytes.HasPrefix(raw, s2Magic) {
		t.Fatalf("snapshot does not start with the S2 stream identifier: %q", raw[:min(len(raw), 16)])
	}
	plain := snapshotJSON(t, raw)
	if !json.Valid(plain) {
		t.Fatal("the S2 stream does not hold JSON")
	}
	if len(raw)*3 > len(plain) {
		t.Errorf("snapshot %d bytes for %d bytes of JSON: not compressed", len(raw), len(plain))
	}
	for name, b := range map[string][]byte{"s2": raw, "plain JSON": plain} {
		g := NewFSM(nil)
		if err := g.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := persist(t, g); !bytes.Equal(got, plain) {
			t.Errorf("%s restored to another state", name)
		}
	}
	// A torn S2 stream is an error, never a short state.
	g := NewFSM(nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(raw[:len(raw)/2]))); err == nil {
		t.Error("half a snapshot restored without an error")
	}
}
