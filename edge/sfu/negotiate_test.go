package sfu

import (
	"strings"
	"sync"
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

	sink := newTestSink()
	part, err := s.Join("room", ParticipantConfig{ID: "late", CanSubscribe: true, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(part.Close)
	if err := part.Start(); err != nil {
		t.Fatal(err)
	}
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

	pc, err := clientAPI(t, browserLike).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	var mu sync.Mutex
	var pend []webrtc.ICECandidateInit
	var offers []string
	var answerErr error
	sink.onCandidate(TargetSubscriber, func(c webrtc.ICECandidateInit) {
		mu.Lock()
		defer mu.Unlock()
		if pc.RemoteDescription() == nil {
			pend = append(pend, c)
			return
		}
		_ = pc.AddICECandidate(c)
	})
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			_ = part.AddICECandidate(TargetSubscriber, candidateJSON(c.ToJSON()))
		}
	})
	got := make(chan struct{}, 1)
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		buf := make([]byte, 1500)
		if _, _, err := tr.Read(buf); err == nil {
			select {
			case got <- struct{}{}:
			default:
			}
		}
	})
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() { // answers like a signaling client
		for {
			select {
			case <-done:
				return
			case sdp := <-sink.offers:
				mu.Lock()
				offers = append(offers, sdp)
				err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp})
				for _, c := range pend {
					_ = pc.AddICECandidate(c)
				}
				pend = nil
				var ans webrtc.SessionDescription
				if err == nil {
					ans, err = pc.CreateAnswer(nil)
				}
				if err == nil {
					err = pc.SetLocalDescription(ans)
				}
				if err == nil {
					err = part.HandleAnswer(ans.SDP)
				}
				if err != nil && answerErr == nil {
					answerErr = err
				}
				mu.Unlock()
			}
		}
	}()
	part.Ready()

	// A track published now reaches the subscriber.
	startPublisher(t, s, "room", "second", pubOpts{fps: 30, pktsPerFrame: 1, size: 200, keyEvery: 30})
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("no media from the track published after the cancelled subscription; offers %d, answer error %v", len(offers), answerErr)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, o := range offers {
		if !strings.Contains(o, "\nm=") || !strings.Contains(o, "a=ice-ufrag:") {
			t.Errorf("offer %d has no media section or no ICE credentials:\n%s", i+1, o)
		}
	}
	if answerErr != nil {
		t.Errorf("the client could not answer an offer: %v", answerErr)
	}
}
