package sfu

import (
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// TestICENudgesWhileChecking: after the client's first answer, while ICE
// is still checking, the edge asks pion for connectivity passes by adding
// inert remote candidates (icenudge.go); they reach the agent and pair
// with nothing. The client here never learns the edge's candidates, so
// the connection stays in checking for the whole schedule.
func TestICENudgesWhileChecking(t *testing.T) {
	s := newTestSFU(t, testConfig())
	startPublisher(t, s, "room", "alice", pubOpts{fps: 30, pktsPerFrame: 2, size: 300})
	part, sink := joinSubscriber(t, s, "room", "bob")
	part.Ready()
	var offer string
	select {
	case offer = <-sink.offers:
	case <-time.After(10 * time.Second):
		t.Fatal("no subscriber offer")
	}
	noCandidates := regexp.MustCompile(`(?m)^a=(candidate|end-of-candidates).*\r?\n`)
	pc, err := clientAPI(t, browserLike).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: noCandidates.ReplaceAllString(offer, "")}); err != nil {
		t.Fatal(err)
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := part.HandleAnswer(noCandidates.ReplaceAllString(ans.SDP, "")); err != nil {
		t.Fatal(err)
	}
	sub := part.sub
	eventually(t, 5*time.Second, func() string {
		if n := sub.nudges.Load(); n != uint32(len(nudgeDelays)) {
			return fmt.Sprintf("%d nudges of %d", n, len(nudgeDelays))
		}
		return ""
	})
	if st := sub.pc.ICEConnectionState(); st != webrtc.ICEConnectionStateChecking {
		t.Fatalf("ICE %s: the test's premise (a connection still checking) does not hold", st)
	}
	nudgeCands, pairs := 0, 0
	for _, v := range sub.pc.GetStats() {
		switch st := v.(type) {
		case webrtc.ICECandidateStats:
			if st.Type == webrtc.StatsTypeRemoteCandidate && st.IP == "192.0.2.1" {
				nudgeCands++
			}
		case webrtc.ICECandidatePairStats:
			pairs++
		}
	}
	if nudgeCands != len(nudgeDelays) {
		t.Fatalf("pion knows %d nudge candidates, want %d", nudgeCands, len(nudgeDelays))
	}
	if pairs != 0 {
		t.Fatalf("%d candidate pairs: a nudge candidate paired with a local one", pairs)
	}
}
