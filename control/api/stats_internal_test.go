package api

import (
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/state"
)

// TestParticipantEntryUsesBothDirections: a participant that sends and
// receives is scored by its worse direction (a lossy uplink is not hidden
// by a clean downlink), its round trip and jitter are the means of both
// directions, and a direction whose round trip is not timed yet is scored
// with the other's rather than with none.
func TestParticipantEntryUsesBothDirections(t *testing.T) {
	clean := state.MediaSample{Bitrate: 200000, Packets: 1000, JitterMs: 1, RTTMs: 40}
	lossy := state.MediaSample{Bitrate: 200000, Packets: 900, PacketsLost: 100, JitterMs: 3, RTTMs: 60}
	e := participantEntry(state.StatsSample{ParticipantID: "p", Time: time.Unix(1000, 0), SendVideo: lossy, RecvVideo: clean, SendAudio: clean, RecvAudio: clean})
	if want := round2(mos(lossy)); e.QualityScore.Video != want || want >= round2(mos(clean)) {
		t.Fatalf("video score %v, want the lossy uplink's %v (clean downlink %v)", e.QualityScore.Video, want, round2(mos(clean)))
	}
	if e.AverageVideoRtt != 50 || e.AverageVideoJitter != 2 {
		t.Fatalf("video RTT %v jitter %v, want the means 50 and 2", e.AverageVideoRtt, e.AverageVideoJitter)
	}
	if e.QualityScore.Audio != round2(mos(clean)) {
		t.Fatalf("audio score %v, want %v", e.QualityScore.Audio, round2(mos(clean)))
	}

	// Far away (RTT 400 ms measured on the subscriber connection), the
	// publisher connection's round trip not timed yet and its uplink
	// losing 2 %: the uplink is the worse direction once it is scored
	// with the round trip the client has, not with none.
	far := state.MediaSample{Bitrate: 200000, Packets: 1000, JitterMs: 1, RTTMs: 400}
	untimed := state.MediaSample{Bitrate: 200000, Packets: 980, PacketsLost: 20, JitterMs: 1}
	e = participantEntry(state.StatsSample{ParticipantID: "p", SendVideo: untimed, RecvVideo: far})
	if e.AverageVideoRtt != 400 {
		t.Fatalf("video RTT %v, want the one measured (400)", e.AverageVideoRtt)
	}
	timed := untimed
	timed.RTTMs = 400
	if want := round2(mos(timed)); e.QualityScore.Video != want || want >= round2(mos(far)) {
		t.Fatalf("video score %v, want %v: the untimed uplink scored with the measured round trip (downlink %v)", e.QualityScore.Video, want, round2(mos(far)))
	}

	// Nothing sent or received: no figures at all, and such a participant
	// leaves the session's averages alone.
	idle := participantEntry(state.StatsSample{ParticipantID: "q"})
	if idle.QualityScore != (qualityScore{}) || idle.AverageAudioRtt != 0 || idle.AverageVideoJitter != 0 {
		t.Fatalf("idle participant: %+v", idle)
	}
	one := aggregate([]state.StatsSample{{ParticipantID: "p", SendVideo: clean}})
	two := aggregate([]state.StatsSample{{ParticipantID: "p", SendVideo: clean}, {ParticipantID: "q"}})
	two.Time = one.Time
	if one != two {
		t.Fatalf("an idle participant changed the session entry: %+v vs %+v", two, one)
	}
}
