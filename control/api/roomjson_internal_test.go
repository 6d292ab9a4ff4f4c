package api

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/meridian-video/meridian/control/state"
)

// TestRoomJSONMatchesEncodingJSON: rooms and room list pages are appended
// by hand and must be the bytes c.JSON (encoding/json) wrote for them:
// every field empty and set, strings that need escaping, the rarely used
// fields that take encoding/json's path, both shapes (user / userId).
func TestRoomJSONMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	strs := []string{"", "abcd-efgh-ijkl", "a\"b\\c", "<script>&", "x>y", "tab\there", "\x00\x1f", "\x7f", "héllo", "\u2028\u2029", "bad\xffutf8", "🎥 room"}
	str := func() string { return strs[rng.IntN(len(strs))] }
	list := func() []string {
		switch rng.IntN(3) {
		case 0:
			return nil
		case 1:
			return []string{}
		}
		return []string{str(), str()}
	}
	zone := time.FixedZone("x", 5*3600+30*60)
	for i := 0; i < 3000; i++ {
		// The links' prefixes come from the configured public URL, which
		// could need escaping too.
		s := &Server{roomsURL: str() + "/v2/rooms/", sessionsURL: str() + "/v2/sessions/"}
		var rooms []*state.Room
		var views []roomView
		for range rng.IntN(4) {
			r := &state.Room{ID: str(), RoomID: str(), CustomRoomID: str(), UserID: str(), Disabled: rng.IntN(2) == 0, GeoFence: str(),
				AllowedParticipantIDs: list(), MaxParticipants: rng.IntN(5) - 2, RequireSSO: rng.IntN(2) == 0,
				CreatedAt: time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)).In(zone), UpdatedAt: time.Unix(rng.Int64N(4e9), 0)}
			if rng.IntN(2) == 0 {
				r.Webhook = &state.RoomWebhook{EndPoint: str(), Events: list()}
			}
			switch rng.IntN(8) {
			case 0:
				r.AutoCloseConfig = &state.AutoCloseConfig{Type: str(), Duration: 1.5}
			case 1:
				r.AutoStartConfig = json.RawMessage(` {"a": [1, "<b>"]} `)
			case 2:
				r.MultiComposition = json.RawMessage(`{"layout":"GRID"}`)
			case 3:
				r.Pin = state.PinPolicy{Regions: []string{str()}}
			}
			withUser := rng.IntN(2) == 0
			want, err := json.Marshal(s.roomView(r, withUser))
			if err != nil {
				t.Fatal(err)
			}
			var w jsonBuf
			if got := s.appendRoom(&w, nil, r, withUser); w.Err != nil || !bytes.Equal(got, want) {
				t.Fatalf("room %d:\n got %s (%v)\nwant %s", i, got, w.Err, want)
			}
			rooms = append(rooms, r)
			views = append(views, s.roomView(r, true))
		}
		if views == nil {
			views = []roomView{} // listRooms's views were never nil
		}
		info := pageInfo{CurrentPage: rng.IntN(9), PerPage: 20, LastPage: rng.IntN(99), Total: rng.IntN(1e6)}
		want, err := json.Marshal(fiber.Map{"pageInfo": info, "data": views})
		if err != nil {
			t.Fatal(err)
		}
		var w jsonBuf
		if got := s.appendRoomsPage(&w, nil, info, rooms); w.Err != nil || !bytes.Equal(got, want) {
			t.Fatalf("page %d:\n got %s (%v)\nwant %s", i, got, w.Err, want)
		}
	}
}

// BenchmarkRoomsPageJSON: encoding a page of 20 common rooms (a customRoomId
// and a webhook) as c.JSON did (encoding/json) and as listRooms does now.
func BenchmarkRoomsPageJSON(b *testing.B) {
	s := &Server{roomsURL: "https://api.example.com/v2/rooms/", sessionsURL: "https://api.example.com/v2/sessions/"}
	rooms := make([]*state.Room, 20)
	views := make([]roomView, 20)
	for i := range views {
		rooms[i] = &state.Room{ID: "6750a1b2c3d4e5f601234567", RoomID: "abcd-efgh-ijkl", CustomRoomID: "meeting-54724f3d-0", UserID: "9f0c3d4e2b1a",
			CreatedAt: time.Unix(1764840000, 123e6), UpdatedAt: time.Unix(1764840000, 123e6),
			Webhook: &state.RoomWebhook{EndPoint: "https://hooks.example.com/meridian/events", Events: []string{"session-started", "session-ended", "participant-joined", "participant-left"}}}
		views[i] = s.roomView(rooms[i], true)
	}
	info := pageInfo{CurrentPage: 1, PerPage: 20, LastPage: 50000, Total: 1000000}
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			views := make([]roomView, len(rooms))
			for i, r := range rooms {
				views[i] = s.roomView(r, true)
			}
			if _, err := json.Marshal(fiber.Map{"pageInfo": info, "data": views}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("appenders", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var w jsonBuf
			if s.appendRoomsPage(&w, make([]byte, 0, 768*len(rooms)+128), info, rooms); w.Err != nil {
				b.Fatal(w.Err)
			}
		}
	})
}
