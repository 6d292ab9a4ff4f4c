package signal_test

import (
	"testing"
	"time"

	"github.com/meridian-video/meridian/edge/sfu"
	"github.com/meridian-video/meridian/edge/signal/signaltest"
	wire "github.com/meridian-video/meridian/shared/signal"
)

func TestNACKRecoversInjectedLoss(t *testing.T) {
	e := signaltest.StartEdge(t, signaltest.EdgeOptions{})
	ctx := ctxT(t, 40*time.Second)
	lossy, err := signaltest.NewLossyNet(0.10, 42)
	if err != nil {
		t.Fatal(err)
	}
	alice := e.Dial(t, signaltest.Config{Net: lossy})
	if _, _, err := alice.Join(ctx, e.Ticket(t, "room-n", "alice", nil), "alice"); err != nil {
		t.Fatal(err)
	}
	bob := e.Join(t, "room-n", "bob", nil)
	if err := alice.Publish(ctx, signaltest.PublishOptions{Video: true}); err != nil {
		t.Fatal(err)
	}
	signaltest.Eventually(t, 30*time.Second, func() string {
		st, ok := bob.Track("alice", "video")
		if !ok || st.Packets < 200 {
			return signaltest.Reasonf("bob has %d video packets", st.Packets)
		}
		if lossy.Dropped() < 10 {
			return signaltest.Reasonf("only %d packets dropped so far", lossy.Dropped())
		}
		return ""
	})
	injected := float64(lossy.Dropped()) / float64(lossy.Sent())
	// Let the last NACK round finish: wait for 30 more packets.
	st0, _ := bob.Track("alice", "video")
	signaltest.Eventually(t, 10*time.Second, func() string {
		st, _ := bob.Track("alice", "video")
		if st.Packets < st0.Packets+30 {
			return "waiting for more packets"
		}
		return ""
	})
	st, _ := bob.Track("alice", "video")
	// Only the sequence range that existed before the last 30 packets counts:
	// anything newer may still be in recovery.
	span := float64(st0.HighestSeq - st0.FirstSeq + 1)
	lost := float64(st0.HighestSeq-st0.FirstSeq+1) - float64(countUnique(st, st0))
	residual := lost / span
	rt := alice.RTCP()
	t.Logf("injected loss %.1f%% (%d/%d), NACKed packets %d, residual loss at bob %.2f%%",
		injected*100, lossy.Dropped(), lossy.Sent(), rt.NACKedPackets, residual*100)
	if rt.NACKs == 0 || rt.NACKedPackets == 0 {
		t.Fatal("the edge never NACKed the publisher")
	}
	if residual >= injected/2 {
		t.Fatalf("residual loss %.2f%% not well below injected %.2f%%", residual*100, injected*100)
	}
	if st.Duplicates > st.Packets/10 {
		t.Fatalf("%d duplicates forwarded", st.Duplicates)
	}
}

// countUnique estimates how many of the sequence numbers of the first
// snapshot's range have arrived by now: everything received now minus the
// packets beyond that range (which arrived in order, loss aside).
func countUnique(now, then signaltest.TrackStats) int64 {
	beyond := now.HighestSeq - then.HighestSeq
	u := int64(now.Unique) - beyond
	if u < 0 {
		return 0
	}
	return u
}

func TestSimulcastLayerSwitch(t *testing.T) {
	e := signaltest.StartEdge(t, signaltest.EdgeOptions{})
	ctx := ctxT(t, 40*time.Second)
	alice := e.Join(t, "room-s", "alice", nil)
	bob := e.Join(t, "room-s", "bob", nil)
	if err := alice.Publish(ctx, signaltest.PublishOptions{Video: true, Simulcast: true}); err != nil {
		t.Fatal(err)
	}
	signaltest.Eventually(t, 20*time.Second, func() string { return received(bob, "alice", "video", 30) })

	start := time.Now()
	waitLayer := func(layer byte) {
		t.Helper()
		defer func() { t.Logf("layer %c after %s", layer, time.Since(start)) }()
		var base int
		signaltest.Eventually(t, 10*time.Second, func() string {
			st, _ := bob.Track("alice", "video")
			if st.LastLayer != layer {
				base = st.Layers[layer]
				return signaltest.Reasonf("forwarded layer %q, want %q (layers %v)", st.LastLayer, layer, st.Layers)
			}
			if st.Layers[layer] < base+10 {
				return signaltest.Reasonf("only %d packets of %q", st.Layers[layer]-base, layer)
			}
			return ""
		})
	}
	// auto: the estimate (1 Mbit/s initially) fits the full layer.
	waitLayer('f')
	if err := bob.Send(wire.TypeSetLayer, wire.SetLayer{TrackID: "video", Layer: "q"}); err != nil {
		t.Fatal(err)
	}
	waitLayer('q')
	if err := bob.Send(wire.TypeSetLayer, wire.SetLayer{TrackID: "alice/video", Layer: "f"}); err != nil {
		t.Fatal(err)
	}
	waitLayer('f')

	st, _ := bob.Track("alice", "video")
	t.Logf("layers %v switches %+v lost %d", st.Layers, st.Switches, st.Lost())
	if len(st.SSRCs) != 1 {
		t.Fatalf("subscriber saw SSRCs %v; the forwarded SSRC must not change", st.SSRCs)
	}
	var toQ, qToF bool
	for _, s := range st.Switches {
		if s.SeqStep != 1 {
			t.Fatalf("switch %c→%c jumped sequence numbers by %d", s.From, s.To, s.SeqStep)
		}
		toQ = toQ || (s.From == 'f' && s.To == 'q')
		qToF = qToF || (s.From == 'q' && s.To == 'f')
	}
	if !toQ || !qToF {
		t.Fatalf("switches %+v: want f→q (pinned) and then q→f", st.Switches)
	}
	if st.TimestampBackwards != 0 {
		t.Fatalf("RTP timestamps went backwards %d times", st.TimestampBackwards)
	}
	if st.Lost() != 0 {
		t.Fatalf("%d sequence numbers missing on loopback", st.Lost())
	}
	// Pinning an unknown layer or track is an error, not a crash.
	from := len(bob.Messages())
	_ = bob.Send(wire.TypeSetLayer, wire.SetLayer{TrackID: "nope", Layer: "q"})
	_ = bob.Send(wire.TypeSetLayer, wire.SetLayer{TrackID: "video", Layer: "x"})
	signaltest.Eventually(t, 5*time.Second, func() string {
		var codes []string
		for _, m := range bob.Messages()[from:] {
			if m.Type == wire.TypeError {
				e, _ := signaltest.Decode[wire.Error](m)
				codes = append(codes, e.Code)
			}
		}
		if len(codes) < 2 || codes[0] != wire.CodeNotFound || codes[1] != wire.CodeBadRequest {
			return signaltest.Reasonf("error codes %v", codes)
		}
		return ""
	})
}

func TestLateJoinerGetsKeyframeQuickly(t *testing.T) {
	e := signaltest.StartEdge(t, signaltest.EdgeOptions{})
	ctx := ctxT(t, 30*time.Second)
	alice := e.Join(t, "room-k", "alice", nil)
	// Periodic key frames only every 60 s: the late joiner depends on PLI.
	if err := alice.Publish(ctx, signaltest.PublishOptions{Video: true, KeyframeInterval: time.Minute}); err != nil {
		t.Fatal(err)
	}
	bob := e.Join(t, "room-k", "bob", nil)
	signaltest.Eventually(t, 15*time.Second, func() string { return received(bob, "alice", "video", 1) })
	st, _ := bob.Track("alice", "video")
	if d := st.FirstKeyAt.Sub(st.FirstPacketAt); d != 0 {
		t.Fatalf("first forwarded packet was not a keyframe (%s before it)", d)
	}
	// A third joiner a moment later: PLIs are coalesced, yet it gets video too.
	carol := e.Join(t, "room-k", "carol", nil)
	signaltest.Eventually(t, 5*time.Second, func() string { return received(carol, "alice", "video", 1) })
	if got := alice.RTCP().PLIs; got > 6 {
		t.Fatalf("%d PLIs reached the publisher; they should be coalesced", got)
	}
}

func TestActiveSpeaker(t *testing.T) {
	e := signaltest.StartEdge(t, signaltest.EdgeOptions{})
	ctx := ctxT(t, 30*time.Second)
	alice := e.Join(t, "room-as", "alice", nil)
	bob := e.Join(t, "room-as", "bob", nil)
	alice.SetAudioLevel(20)
	if err := alice.Publish(ctx, signaltest.PublishOptions{Audio: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.WaitFor(ctx, wire.TypeActiveSpeaker, func(m wire.Envelope) bool {
		as, _ := signaltest.Decode[wire.ActiveSpeaker](m)
		return len(as.ParticipantIDs) == 1 && as.ParticipantIDs[0] == "alice"
	}); err != nil {
		t.Fatal(err)
	}
	alice.SetAudioLevel(127)
	if _, err := bob.WaitFor(ctx, wire.TypeActiveSpeaker, func(m wire.Envelope) bool {
		as, _ := signaltest.Decode[wire.ActiveSpeaker](m)
		return len(as.ParticipantIDs) == 0
	}); err != nil {
		t.Fatal(err)
	}
}

// TestConnectionQualityReachesEveryMember: every member hears every other
// member's connection-quality score, members that joined later included (a
// joiner gets the scores of those already there; they get the joiner's).
// The frames are shared between recipients (qualityFrames), so this also
// checks that one member's frame is not another's.
func TestConnectionQualityReachesEveryMember(t *testing.T) {
	e := signaltest.StartEdge(t, signaltest.EdgeOptions{SFU: func(c *sfu.Config) { c.QualityInterval = 100 * time.Millisecond }})
	ctx := ctxT(t, 30*time.Second)
	names := []string{"alice", "bob", "carol", "dave"}
	clients := map[string]*signaltest.Client{}
	for _, n := range names {
		clients[n] = e.Join(t, "room-cq", n, nil)
		time.Sleep(150 * time.Millisecond) // a quality round between joins
	}
	for _, to := range names {
		for _, about := range names {
			if about == to {
				continue
			}
			if _, err := clients[to].WaitFor(ctx, wire.TypeConnectionQuality, func(m wire.Envelope) bool {
				q, err := signaltest.Decode[wire.ConnectionQuality](m)
				return err == nil && q.ParticipantID == about && q.Score > 0 && q.Score <= 100
			}); err != nil {
				t.Fatalf("%s never heard %s's connection quality: %v", to, about, err)
			}
		}
	}
}
