package sfu

import (
	"time"

	"github.com/pion/webrtc/v4"
)

// Nominating sooner. The edge is the ICE-controlling agent of the
// subscriber connections it offers, and pion's controlling agent nominates
// a pair either when a check from the client arrives on the pair it rates
// best and has already seen succeed, or on its next connectivity pass,
// every 200 ms (pion/ice's check interval, which pion/webrtc does not
// expose). A browser checks as soon as it has the offer, so its first
// check often reaches the edge before the edge's own check of that pair
// has succeeded; the browser then sends its DTLS ClientHello and waits,
// and the edge, whose DTLS starts once it has nominated, answers up to a
// pass later (docs/benchmarks.md, "Is the ~200 ms DTLS step the edge's
// many addresses?"). pion runs a pass whenever a remote candidate is
// added; nudges add an inert one a few times in the first ~100 ms after
// the client's first answer, while the connection is still checking: a
// passive TCP candidate on an address reserved for documentation (RFC
// 5737), which pairs with nothing since the edge gathers no TCP
// candidates. A pass with a succeeded pair nominates it; one without
// pings every pair again, so the subscriber API allows as many more
// binding requests per pair as there are nudges.

// nudgeDelays are when, after the first answer, the edge nudges.
var nudgeDelays = []time.Duration{10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond}

// pionMaxBindingRequests is pion/ice's default of binding requests per
// pair before it counts the pair failed.
const pionMaxBindingRequests = 7

// scheduleNudges arms the nudges (once per connection).
func (s *Subscriber) scheduleNudges() {
	if s.part.relay || !s.nudging.CompareAndSwap(false, true) {
		return
	}
	for _, d := range nudgeDelays {
		time.AfterFunc(d, s.nudgeICE)
	}
}

// nudgeICE makes pion run a connectivity pass now, if still checking.
func (s *Subscriber) nudgeICE() {
	switch s.pc.ICEConnectionState() {
	case webrtc.ICEConnectionStateNew, webrtc.ICEConnectionStateChecking:
	default:
		return
	}
	n := s.nudges.Add(1)
	_ = s.pc.SCTP().Transport().ICETransport().AddRemoteCandidate(&webrtc.ICECandidate{
		Foundation: "nudge", Priority: 1, Address: "192.0.2.1", Protocol: webrtc.ICEProtocolTCP,
		Port: uint16(9 + n), Typ: webrtc.ICECandidateTypeHost, TCPType: "passive", Component: 1,
	})
}
