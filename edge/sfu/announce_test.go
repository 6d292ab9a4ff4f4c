package sfu

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// A track is offered to subscribers from the publisher's offer, before the
// publisher has sent a packet; a subscriber whose answer is in place when
// the encoder's first keyframe arrives gets that keyframe first, without
// any keyframe request reaching the publisher. With simulcast too: the
// SDP's rids make the announced track a simulcast one, and its layers
// join it at their first packets.
func TestTrackOfferedBeforeFirstPacket(t *testing.T) {
	for _, simulcast := range []bool{false, true} {
		t.Run(fmt.Sprintf("simulcast=%v", simulcast), func(t *testing.T) {
			s := newTestSFU(t, testConfig())
			sub := startSubscriber(t, s, "room", "bob", browserLike)
			// fps 0: the publisher sends nothing until the test says so; its
			// first frame is a keyframe, as a new encoder's is.
			pub := startPublisher(t, s, "room", "alice", pubOpts{simulcast: simulcast})

			eventually(t, 10*time.Second, func() string {
				offers, err := sub.negotiation()
				for _, o := range offers {
					if strings.Contains(o, "a=msid:alice video") {
						return ""
					}
				}
				return fmt.Sprintf("no subscriber offer with alice's video among %d (answer error %v)", len(offers), err)
			})
			tr := pub.part.pub.track("video")
			if tr == nil {
				t.Fatal("alice's video offered but not published")
			}
			if _, pk, _, _, _, _, _ := tr.inbound(); pk != 0 {
				t.Fatalf("the edge had %d packets of alice's video before the test sent any", pk)
			}
			if got := tr.Info().Simulcast; got != simulcast {
				t.Fatalf("announced track simulcast = %v, want %v", got, simulcast)
			}

			// Both transports up and the subscriber's answer bound: as when
			// the subscriber answers before the encoder's first frame.
			eventually(t, 10*time.Second, func() string {
				if st := pub.pc.ConnectionState(); st != webrtc.PeerConnectionStateConnected {
					return "publisher is " + st.String()
				}
				fs := sub.part.sub.forwarders()
				if len(fs) != 1 || !fs[0].receiving() {
					return fmt.Sprintf("%d forwarders, none receiving yet", len(fs))
				}
				return ""
			})

			deadline := time.Now().Add(10 * time.Second)
			for len(sub.received("video")) < 10 {
				if time.Now().After(deadline) {
					st := &sub.part.sub.forwarders()[0].stats
					t.Fatalf("bob has %d video packets (forwarder skipped %d before a keyframe, %d unconnected)",
						len(sub.received("video")), st.skipNoKeyframe.Load(), st.skipNotConnected.Load())
				}
				pub.sendFrame(2, 300, false)
				time.Sleep(time.Second / 30)
			}
			got := sub.received("video")
			if !got[0].key {
				t.Fatalf("bob's first video packet is not a keyframe: %+v", got[0])
			}
			if !simulcast {
				if n := pub.plis[0].Load(); n != 0 {
					t.Fatalf("%d keyframe requests reached the publisher; the encoder's first keyframe should have done", n)
				}
			}
			// The layers joined the announced track (no second track).
			if again := pub.part.pub.track("video"); again != tr {
				t.Fatal("the first packets made a new track instead of starting the announced one")
			}
		})
	}
}

// A track announced by an offer and negotiated away by the next one before
// any packet of it arrived is unpublished: subscribers lose it.
func TestAnnouncedTrackRemovedBeforeMedia(t *testing.T) {
	s := newTestSFU(t, testConfig())
	sub := startSubscriber(t, s, "room", "bob", browserLike)
	pub := startPublisher(t, s, "room", "alice", pubOpts{})
	eventually(t, 10*time.Second, func() string {
		if n := len(sub.part.sub.forwarders()); n != 1 {
			return fmt.Sprintf("bob has %d forwarders, want alice's video", n)
		}
		return ""
	})

	if err := pub.pc.RemoveTrack(pub.sender); err != nil {
		t.Fatal(err)
	}
	offer, err := pub.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	ans, err := pub.part.HandleOffer(offer.SDP)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans}); err != nil {
		t.Fatal(err)
	}
	if tr := pub.part.pub.track("video"); tr != nil {
		t.Fatal("alice's video is still published after her offer stopped sending it")
	}
	eventually(t, 10*time.Second, func() string {
		if n := len(sub.part.sub.forwarders()); n != 0 {
			return fmt.Sprintf("bob still has %d forwarders", n)
		}
		return ""
	})
}

// A simulcast layer picked for a forwarder that cannot receive yet (its
// subscriber has not answered) asks the publisher for no keyframe: the
// answer would go by unused and spend the layer's request budget, so the
// request made when the subscriber is bound would wait out the limiter.
// Once bound, the subscriber's first packet is a keyframe.
func TestLayerPickedBeforeTheAnswerAsksNoKeyframe(t *testing.T) {
	s := newTestSFU(t, testConfig())
	pub := startPublisher(t, s, "room", "alice", pubOpts{simulcast: true, fps: 30, pktsPerFrame: 1, size: 200})
	tr := pub.videoTrack(t)
	eventually(t, 10*time.Second, func() string {
		if avail, _ := tr.availableLayers(); avail != [nLayers]bool{true, true, true} {
			return fmt.Sprintf("layers with media: %v", avail)
		}
		return ""
	})
	lastPLI := func() (out [nLayers]time.Time) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		for i, l := range tr.layers {
			out[i] = l.kf.last
		}
		return out
	}

	part, sink := joinSubscriber(t, s, "room", "bob") // negotiation held: not bound
	fs := part.sub.forwarders()
	if len(fs) != 1 {
		t.Fatalf("bob has %d forwarders, want alice's video", len(fs))
	}
	f := fs[0]
	before := lastPLI()
	for _, idx := range []int{LayerQ, LayerH, LayerF} {
		f.setTarget(idx)
	}
	if after := lastPLI(); after != before {
		t.Fatalf("layers picked for an unbound forwarder sent keyframe requests (last PLI per layer %v, before %v)", after, before)
	}

	sub := attachSubscriber(t, part, sink, browserLike)
	eventually(t, 10*time.Second, func() string {
		if n := len(sub.received("video")); n < 5 {
			return fmt.Sprintf("bob has %d video packets", n)
		}
		return ""
	})
	if got := sub.received("video")[0]; !got.key {
		t.Fatalf("bob's first video packet is not a keyframe: %+v", got)
	}
}
