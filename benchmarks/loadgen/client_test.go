package main

import (
	"encoding/json"
	"reflect"
	"testing"

	wire "github.com/meridian-video/meridian/shared/signal"
)

// TestRoomEventsAreDecoded: the joiner decodes every room event into its
// wire type, as the edge encodes them, and a malformed one is an error
// (the client fails rather than reading past it). Every entry of the
// table is held to a sample of the type the edge sends for that event, so
// an entry dropped, added without a sample, or mapped to another type
// fails here.
func TestRoomEventsAreDecoded(t *testing.T) {
	samples := map[string]any{
		wire.TypeParticipantJoined: wire.Participant{ParticipantID: "p1", Name: "a", Tracks: []wire.TrackInfo{}},
		wire.TypeParticipantLeft:   wire.ParticipantLeft{ParticipantID: "p1", Reason: "left"},
		wire.TypeConnectionQuality: wire.ConnectionQuality{ParticipantID: "p1", Score: 80},
		wire.TypeTrackPublished:    wire.TrackInfo{ParticipantID: "p1", TrackID: "t1"},
		wire.TypeTrackUnpublished:  wire.TrackUnpublished{ParticipantID: "p1", TrackID: "t1"},
		wire.TypeActiveSpeaker:     wire.ActiveSpeaker{ParticipantIDs: []string{"p1"}},
		wire.TypeMute:              wire.Mute{ParticipantID: "p1", Kind: "video", Muted: true},
		wire.TypeEgressState:       wire.EgressState{Recording: true},
	}
	for typ := range roomEventTypes {
		if _, ok := samples[typ]; !ok {
			t.Errorf("%s is decoded by the joiner but has no sample here", typ)
		}
	}
	for typ, v := range samples {
		newValue, ok := roomEventTypes[typ]
		if !ok {
			t.Errorf("%s: the joiner does not decode it", typ)
			continue
		}
		if got, want := reflect.TypeOf(newValue()), reflect.PointerTo(reflect.TypeOf(v)); got != want {
			t.Errorf("%s decodes into %v, the edge sends %v", typ, got, want)
		}
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
