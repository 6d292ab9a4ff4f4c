package main

import (
	"encoding/json"
	"testing"

	wire "github.com/meridian-video/meridian/shared/signal"
)

// TestEnvelopeTypeReadsTheEdgesFrames: the type peeked without decoding is
// the type of a frame as the edge encodes it, and any frame of another
// shape is left for a full decode instead of being guessed at.
func TestEnvelopeTypeReadsTheEdgesFrames(t *testing.T) {
	for _, typ := range []string{wire.TypeJoined, wire.TypeOffer, wire.TypeCandidate, wire.TypeConnectionQuality, wire.TypeParticipantJoined} {
		frame, err := json.Marshal(wire.Envelope{Type: typ, Data: json.RawMessage(`{"type":"decoy"}`)})
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := envelopeType(frame); !ok || got != typ {
			t.Errorf("%s: envelopeType = %q, %v; want %q", frame, got, ok, typ)
		}
	}
	for _, frame := range []string{`{"data":{},"type":"offer"}`, `{ "type":"offer"}`, `{"type":"off\"er"}`, `{"type":"offer`, `[]`, ``} {
		if got, ok := envelopeType([]byte(frame)); ok {
			t.Errorf("%s: envelopeType = %q, true; want a full decode", frame, got)
		}
	}
}
