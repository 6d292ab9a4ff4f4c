package signal_test

import (
	"context"
	"testing"
	"time"

	"github.com/meridian-video/meridian/edge/signal/signaltest"
	wire "github.com/meridian-video/meridian/shared/signal"
	"github.com/meridian-video/meridian/shared/ticket"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// received reports "" once c got at least n packets (and a keyframe for
// video) on track pid/tid.
func received(c *signaltest.Client, pid, tid string, n int) string {
	st, ok := c.Track(pid, tid)
	if !ok {
		return signaltest.Reasonf("no track %s/%s yet", pid, tid)
	}
	if st.Packets < n {
		return signaltest.Reasonf("%s/%s: %d packets < %d", pid, tid, st.Packets, n)
	}
	if st.Kind == "video" && st.Keyframes == 0 {
		return signaltest.Reasonf("%s/%s: no keyframe", pid, tid)
	}
	return ""
}

func TestTwoPublishersAndSubscriberExchangeMedia(t *testing.T) {
	e := signaltest.StartEdge(t, signaltest.EdgeOptions{})
	ctx := ctxT(t, 30*time.Second)
	alice := e.Join(t, "room-a", "alice", nil)
	bob := e.Join(t, "room-a", "bob", nil)
	carol := e.Join(t, "room-a", "carol", func(c *ticket.Claims) { c.Permissions.Publish = false })

	for _, c := range []*signaltest.Client{alice, bob} {
		if err := c.Publish(ctx, signaltest.PublishOptions{Video: true, Audio: true}); err != nil {
			t.Fatal(err)
		}
	}
	signaltest.Eventually(t, 20*time.Second, func() string {
		for _, r := range []struct {
			c    *signaltest.Client
			from []string
		}{{alice, []string{"bob"}}, {bob, []string{"alice"}}, {carol, []string{"alice", "bob"}}} {
			for _, p := range r.from {
				for _, tid := range []string{"video", "audio"} {
					if why := received(r.c, p, tid, 20); why != "" {
						return why
					}
				}
			}
		}
		return ""
	})
	// Nobody receives their own tracks; the stream id names the publisher.
	for _, c := range []*signaltest.Client{alice, bob} {
		for _, st := range c.Tracks() {
			if st.ParticipantID == c.Joined().ParticipantID {
				t.Fatalf("%s receives its own track %s", st.ParticipantID, st.TrackID)
			}
		}
	}
	// Stats reach the agent's snapshot.
	signaltest.Eventually(t, 10*time.Second, func() string {
		for _, ps := range e.SFU.Stats() {
			if ps.ParticipantID == "carol" && len(ps.Recv) == 4 && len(ps.Send) == 0 {
				for _, r := range ps.Recv {
					if r.Packets == 0 || r.Bitrate == 0 {
						return signaltest.Reasonf("carol recv %+v", r)
					}
				}
				return ""
			}
		}
		return signaltest.Reasonf("no stats for carol: %+v", e.SFU.Stats())
	})
}

// The edge offers a participant's subscriber PeerConnection right after
// `joined`, before anyone publishes: over the real signaling socket the
// client's subscriber connects in an empty room (ICE and DTLS off the path
// of the first remote track), the offer comes after `joined`, and a track
// published later arrives over that connection after a renegotiation.
func TestSubscriberConnectsBeforeAnyoneJoins(t *testing.T) {
	e := signaltest.StartEdge(t, signaltest.EdgeOptions{})
	ctx := ctxT(t, 30*time.Second)
	alice := e.Join(t, "room-early", "alice", nil)
	signaltest.Eventually(t, 10*time.Second, func() string {
		if !alice.Connected(wire.TargetSubscriber) {
			return "alice's subscriber PeerConnection is not connected in a room without tracks"
		}
		return ""
	})
	offers, joinedAt := 0, -1
	for i, m := range alice.Messages() {
		switch m.Type {
		case wire.TypeJoined:
			joinedAt = i
		case wire.TypeOffer:
			offers++
			if joinedAt < 0 {
				t.Fatalf("subscriber offer (message %d) before joined", i)
			}
		}
	}
	if offers != 1 {
		t.Fatalf("%d subscriber offers before any track, want 1", offers)
	}

	bob := e.Join(t, "room-early", "bob", nil)
	if err := bob.Publish(ctx, signaltest.PublishOptions{Video: true}); err != nil {
		t.Fatal(err)
	}
	signaltest.Eventually(t, 20*time.Second, func() string { return received(alice, "bob", "video", 20) })
	offers = 0
	for _, m := range alice.Messages() {
		if m.Type == wire.TypeOffer {
			offers++
		}
	}
	if offers < 2 {
		t.Fatalf("bob's track reached alice with %d subscriber offers, want a renegotiation", offers)
	}
}
