package egress

import (
	"github.com/pion/webrtc/v4"

	"github.com/meridian-video/meridian/edge/sfu"
)

// Media is what egress needs from the SFU of its edge: who is in a room,
// who speaks, and a tap on a published track. *sfu.SFU provides it through
// FromSFU; the indirection keeps the job code free of SFU internals.
type Media interface {
	// Members lists a room's publishing participants and their tracks;
	// false when the room is not on this edge.
	Members(roomID string) ([]sfu.Member, bool)
	// ActiveSpeakers lists the room's current speakers, loudest first.
	ActiveSpeakers(roomID string) []string
	// Tap attaches w to a published track.
	Tap(roomID, participantID, trackID string, w sfu.TapWriter) (Tap, error)
}

// Tap is an attached track consumer (see sfu.Tap).
type Tap interface {
	Maintain()
	RequestKeyframe()
	Ended() bool
	Close()
	Codec() webrtc.RTPCodecParameters
}

type sfuMedia struct{ s *sfu.SFU }

// FromSFU adapts the edge's SFU.
func FromSFU(s *sfu.SFU) Media { return sfuMedia{s} }

func (m sfuMedia) Members(roomID string) ([]sfu.Member, bool) {
	r := m.s.Room(roomID)
	if r == nil {
		return nil, false
	}
	return r.Members(), true
}

func (m sfuMedia) ActiveSpeakers(roomID string) []string {
	if r := m.s.Room(roomID); r != nil {
		return r.ActiveSpeakers()
	}
	return nil
}

func (m sfuMedia) Tap(roomID, participantID, trackID string, w sfu.TapWriter) (Tap, error) {
	r := m.s.Room(roomID)
	if r == nil {
		return nil, ErrRoomNotFound
	}
	t, err := r.Tap(participantID, trackID, w)
	if err != nil {
		return nil, err
	}
	return t, nil
}
