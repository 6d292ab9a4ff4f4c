package sfu

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
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

// A client's subscriber PeerConnection is offered as soon as negotiation is
// released, before anyone publishes: its ICE and DTLS complete while the
// others are still starting their cameras, and a track published later is
// a renegotiation of that connected transport (same ICE credentials, no new
// DTLS handshake), whose media then arrives.
func TestSubscriberConnectsBeforeAnyTrack(t *testing.T) {
	s := newTestSFU(t, testConfig())
	sub := startSubscriber(t, s, "room", "early", browserLike)

	eventually(t, 10*time.Second, func() string {
		if !sub.part.sub.connected.Load() {
			offers, err := sub.negotiation()
			return fmt.Sprintf("subscriber transport not connected while the room has no track; offers %d, answer error %v", len(offers), err)
		}
		if st := sub.pc.ConnectionState(); st != webrtc.PeerConnectionStateConnected {
			return "client's PeerConnection is " + st.String()
		}
		return ""
	})
	if n := len(sub.part.sub.forwarders()); n != 0 {
		t.Fatalf("%d forwarders in a room nobody publishes in", n)
	}
	if got := sub.received("audio"); len(got) != 0 {
		t.Fatalf("the transport-only section carried %d packets", len(got))
	}
	dtls := sub.pc.SCTP().Transport() // the bundled DTLS transport
	firstOffers, _ := sub.negotiation()
	if len(firstOffers) != 1 {
		t.Fatalf("%d offers before any track, want 1", len(firstOffers))
	}

	startPublisher(t, s, "room", "pub", pubOpts{fps: 30, pktsPerFrame: 1, size: 200, keyEvery: 30})
	eventually(t, 10*time.Second, func() string {
		if len(sub.received("video")) == 0 {
			offers, err := sub.negotiation()
			return fmt.Sprintf("no video after the track was published; offers %d, answer error %v", len(offers), err)
		}
		return ""
	})
	offers, answerErr := sub.negotiation()
	if answerErr != nil {
		t.Fatalf("answering: %v", answerErr)
	}
	ufrag := func(sdp string) string {
		for _, l := range strings.Split(sdp, "\n") {
			if strings.HasPrefix(l, "a=ice-ufrag:") {
				return strings.TrimSpace(l)
			}
		}
		return ""
	}
	for i, o := range offers[1:] {
		if ufrag(o) != ufrag(offers[0]) {
			t.Errorf("offer %d restarts ICE (%s, first offer %s)", i+2, ufrag(o), ufrag(offers[0]))
		}
	}
	if sub.pc.SCTP().Transport() != dtls || dtls.State() != webrtc.DTLSTransportStateConnected {
		t.Errorf("the DTLS transport changed or is %s after the renegotiation", dtls.State())
	}
}
