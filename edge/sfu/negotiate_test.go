package sfu

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// A track published and unpublished while a subscriber's negotiation is
// held (it joined, but the client has not been told `joined` yet) leaves
// nothing to negotiate. The edge must not send an offer then: on a fresh
// connection it would have no media section and no ICE credentials, pion
// clients cannot answer it, and the subscriber would wait for that answer
// forever — never receiving the tracks published afterwards. Seen when
// participants moved off a draining edge while the others' tracks were
// moving too.
func TestNoOfferWhenQueuedChangesCancelOut(t *testing.T) {
	s := newTestSFU(t, testConfig())
	first := startPublisher(t, s, "room", "first", pubOpts{fps: 30, pktsPerFrame: 1, size: 200, keyEvery: 30})
	first.videoTrack(t)

	part, sink := joinSubscriber(t, s, "room", "late")
	eventually(t, 5*time.Second, func() string {
		if n := len(part.sub.forwarders()); n != 1 {
			return "subscription to first's track not queued yet"
		}
		return ""
	})
	first.close() // unpublished before the subscriber negotiated anything
	eventually(t, 5*time.Second, func() string {
		if n := len(part.sub.forwarders()); n != 0 {
			return "first's track still subscribed"
		}
		return ""
	})
	late := attachSubscriber(t, part, sink, browserLike)

	// A track published now reaches the subscriber.
	startPublisher(t, s, "room", "second", pubOpts{fps: 30, pktsPerFrame: 1, size: 200, keyEvery: 30})
	eventually(t, 10*time.Second, func() string {
		if len(late.received("video")) == 0 {
			offers, err := late.negotiation()
			return fmt.Sprintf("no media from the track published after the cancelled subscription; offers %d, answer error %v", len(offers), err)
		}
		return ""
	})
	offers, answerErr := late.negotiation()
	for i, o := range offers {
		if !strings.Contains(o, "\nm=") || !strings.Contains(o, "a=ice-ufrag:") {
			t.Errorf("offer %d has no media section or no ICE credentials:\n%s", i+1, o)
		}
	}
	if answerErr != nil {
		t.Errorf("the client could not answer an offer: %v", answerErr)
	}
}
