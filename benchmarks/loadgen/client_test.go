package main

import (
	"encoding/json"
	"testing"

	wire "github.com/meridian-video/meridian/shared/signal"
)

// TestRoomEventsAreDecoded: the joiner decodes every room event into its
// wire type, as the edge encodes them, and a malformed one is an error
// (the client fails rather than reading past it).
func TestRoomEventsAreDecoded(t *testing.T) {
	for typ, v := range map[string]any{
		wire.TypeParticipantJoined: wire.Participant{ParticipantID: "p1", Name: "a", Tracks: []wire.TrackInfo{}},
		wire.TypeParticipantLeft:   wire.ParticipantLeft{ParticipantID: "p1", Reason: "left"},
		wire.TypeConnectionQuality: wire.ConnectionQuality{ParticipantID: "p1", Score: 80},
		wire.TypeTrackPublished:    wire.TrackInfo{ParticipantID: "p1", TrackID: "t1"},
		wire.TypeActiveSpeaker:     wire.ActiveSpeaker{ParticipantIDs: []string{"p1"}},
	} {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := decodeRoomEvent(typ, data); err != nil {
			t.Errorf("%s %s: %v", typ, data, err)
		}
		if err := decodeRoomEvent(typ, json.RawMessage(`[1]`)); err == nil {
			t.Errorf("%s with an array for its data: decoded", typ)
		}
	}
	if err := decodeRoomEvent("something-new", json.RawMessage(`[1]`)); err != nil {
		t.Errorf("an event type the joiner does not know: %v", err)
	}
}
