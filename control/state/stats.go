package state

import "time"

// MaxSamplesPerParticipant bounds replicated stats (10 s samples ≈ 24 h).
const MaxSamplesPerParticipant = 8640

// MediaSample is one direction of one kind over an interval.
type MediaSample struct {
	Bitrate     float64 `json:"bitrate"`
	PacketsLost int64   `json:"packetsLost"`
	Packets     int64   `json:"packets"`
	JitterMs    float64 `json:"jitterMs"`
	RTTMs       float64 `json:"rttMs"`
	Width       int     `json:"width,omitempty"`
	Height      int     `json:"height,omitempty"`
	FPS         float64 `json:"fps,omitempty"`
}

// StatsSample is a participant's coarse summary for one interval.
type StatsSample struct {
	ParticipantID string      `json:"participantId"`
	Time          time.Time   `json:"time"`
	SendAudio     MediaSample `json:"sendAudio"`
	SendVideo     MediaSample `json:"sendVideo"`
	RecvAudio     MediaSample `json:"recvAudio"`
	RecvVideo     MediaSample `json:"recvVideo"`
	Quality       float64     `json:"quality"`
}

// AppendStats adds samples to rooms' ongoing sessions.
type AppendStats struct {
	Samples []RoomSample    `json:"samples"`
	Legs    []RoomLegSample `json:"legs,omitempty"`
}

// MaxLegSamples bounds the cascade-leg samples kept per session.
const MaxLegSamples = 8640

// LegSample is one cascade leg end over one interval, as its edge saw it.
type LegSample struct {
	EdgeID     string    `json:"edgeId"`
	PeerEdgeID string    `json:"peerEdgeId"`
	Direction  string    `json:"direction"` // in | out (seen from EdgeID)
	Time       time.Time `json:"time"`
	Bitrate    float64   `json:"bitrate"`
	Packets    uint64    `json:"packets"`
	Bytes      uint64    `json:"bytes"`
	RTTMs      float64   `json:"rttMs,omitempty"`
	Tracks     int       `json:"tracks"`
}

// RoomLegSample ties a leg sample to its room.
type RoomLegSample struct {
	RoomID string    `json:"roomId"`
	Leg    LegSample `json:"leg"`
}

// RoomSample ties a sample to its room.
type RoomSample struct {
	RoomID string      `json:"roomId"`
	Sample StatsSample `json:"sample"`
}

func init() {
	register(CmdAppendStats, func(s *Store, index uint64, c *AppendStats) (any, error) {
		// Samples are appended to the row's slice without copying it: a
		// reader's version has a shorter length and never sees the new
		// slots, and only Apply (one writer) appends. Dropping the oldest
		// sample copies (dropOldestFor) or reslices, never writes below a
		// published length.
		for _, rs := range c.Samples {
			r := s.roomByRoomID(rs.RoomID)
			if r == nil {
				continue
			}
			ss := s.ongoingSession(r.ID)
			if ss == nil {
				continue
			}
			var list []StatsSample
			if cur := one[*statsRow](s, tStats, "id", ss.ID); cur != nil {
				list = cur.Samples
			}
			rs.Sample.ParticipantID = intern(rs.Sample.ParticipantID)
			list = append(list, rs.Sample)
			if n := countFor(list, rs.Sample.ParticipantID); n > MaxSamplesPerParticipant {
				list = dropOldestFor(list, rs.Sample.ParticipantID)
			}
			s.put(tStats, &statsRow{SessionID: ss.ID, Samples: list})
		}
		for _, rl := range c.Legs {
			r := s.roomByRoomID(rl.RoomID)
			if r == nil {
				continue
			}
			ss := s.ongoingSession(r.ID)
			if ss == nil {
				continue
			}
			var list []LegSample
			if cur := one[*legRow](s, tLegs, "id", ss.ID); cur != nil {
				list = cur.Legs
			}
			rl.Leg.EdgeID, rl.Leg.PeerEdgeID, rl.Leg.Direction = intern(rl.Leg.EdgeID), intern(rl.Leg.PeerEdgeID), intern(rl.Leg.Direction)
			list = append(list, rl.Leg)
			if len(list) > MaxLegSamples {
				list = list[len(list)-MaxLegSamples:]
			}
			s.put(tLegs, &legRow{SessionID: ss.ID, Legs: list})
		}
		s.bump("stats", index)
		return nil, nil
	})
}

func countFor(list []StatsSample, pid string) int {
	n := 0
	for _, x := range list {
		if x.ParticipantID == pid {
			n++
		}
	}
	return n
}

func dropOldestFor(list []StatsSample, pid string) []StatsSample {
	for i, x := range list {
		if x.ParticipantID == pid {
			return append(list[:i:i], list[i+1:]...)
		}
	}
	return list
}

// SessionStats returns a session's samples in arrival order.
func (s *Store) SessionStats(sessionID string) []StatsSample {
	if r := one[*statsRow](s, tStats, "id", sessionID); r != nil {
		return append([]StatsSample(nil), r.Samples...)
	}
	return nil
}

// SessionLegStats returns a session's cascade-leg samples, oldest first.
func (s *Store) SessionLegStats(sessionID string) []LegSample {
	if r := one[*legRow](s, tLegs, "id", sessionID); r != nil {
		return append([]LegSample(nil), r.Legs...)
	}
	return nil
}
