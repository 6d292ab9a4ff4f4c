package sfu

import (
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	wire "github.com/meridian-video/meridian/shared/signal"
)

type qualitySink struct{ got []string }

func (s *qualitySink) SubscriberOffer(string)                     {}
func (s *qualitySink) Candidate(string, *webrtc.ICECandidateInit) {}
func (s *qualitySink) TrackPublished(wire.TrackInfo)              {}
func (s *qualitySink) TrackUnpublished(string, string)            {}
func (s *qualitySink) ActiveSpeakers([]string)                    {}
func (s *qualitySink) ConnectionQuality(id string, _ float64)     { s.got = append(s.got, id) }

// TestQualityReportsOnlyChanges: a newcomer gets everyone's score once, then
// only scores that moved are sent — not N² frames every interval.
func TestQualityReportsOnlyChanges(t *testing.T) {
	r := &Room{id: "r"}
	sa, sb := &qualitySink{}, &qualitySink{}
	a := &Participant{room: r, id: "a", key: "a", sink: sa}
	b := &Participant{room: r, id: "b", key: "b", sink: sb}
	a.ready.Store(true)
	b.ready.Store(true)
	now := time.Unix(1000, 0)
	r.reportQuality([]*Participant{a, b}, now)
	if len(sa.got) != 2 || len(sb.got) != 2 {
		t.Fatalf("first report: a got %v, b got %v", sa.got, sb.got)
	}
	r.reportQuality([]*Participant{a, b}, now.Add(5*time.Second))
	if len(sa.got) != 2 || len(sb.got) != 2 {
		t.Fatalf("unchanged scores were re-sent: a %v, b %v", sa.got, sb.got)
	}
	sc := &qualitySink{}
	c := &Participant{room: r, id: "c", key: "c", sink: sc}
	c.ready.Store(true)
	r.reportQuality([]*Participant{a, b, c}, now.Add(10*time.Second))
	if len(sc.got) != 3 {
		t.Fatalf("newcomer got %v, want all three scores", sc.got)
	}
	if len(sa.got) != 3 || sa.got[2] != "c" {
		t.Fatalf("existing participant should learn only the newcomer's score: %v", sa.got)
	}
}

// TestQualityWaitsUntilTheClientJoined: a participant whose client was not
// yet told `joined` gets no scores (signaling would have to buffer them, up
// to its limit, and a room's full set can be larger), and gets the full set
// at the first round after Ready; the others hear its score meanwhile.
func TestQualityWaitsUntilTheClientJoined(t *testing.T) {
	r := &Room{id: "r"}
	sa, sb := &qualitySink{}, &qualitySink{}
	a := &Participant{room: r, id: "a", key: "a", sink: sa}
	b := &Participant{room: r, id: "b", key: "b", sink: sb}
	a.Ready()
	now := time.Unix(1000, 0)
	r.reportQuality([]*Participant{a, b}, now)
	if len(sb.got) != 0 {
		t.Fatalf("b got %v before it was ready", sb.got)
	}
	if len(sa.got) != 2 {
		t.Fatalf("a got %v, want both scores", sa.got)
	}
	b.Ready()
	r.reportQuality([]*Participant{a, b}, now.Add(5*time.Second))
	if len(sb.got) != 2 {
		t.Fatalf("b got %v after Ready, want both scores", sb.got)
	}
	if len(sa.got) != 2 {
		t.Fatalf("a got %v: unchanged scores re-sent", sa.got)
	}
}
