package cascade_test

import (
	"context"
	"testing"
	"time"

	"github.com/meridian-video/meridian/edge/sfu"
	"github.com/meridian-video/meridian/edge/signal/signaltest"
)

// TestCascadeNACKPerHop: media lost on the relay leg (10 % of the RTP the
// upstream edge sends on it) is asked for by the downstream edge and
// retransmitted by the upstream edge from its own buffer: the far
// subscriber ends up with a small fraction of the loss, and the publisher,
// whose own link loses nothing, is never asked for a packet (NACKs are
// answered per hop, not passed along to the source).
func TestCascadeNACKPerHop(t *testing.T) {
	lossy, err := signaltest.NewLossyNet(0.10, 7)
	if err != nil {
		t.Fatal(err)
	}
	ctl := newControl(t)
	a := startEdge(t, ctl, "paris-1", "eu-west", func(c *sfu.Config) { c.RelayNet = lossy })
	b := startEdge(t, ctl, "montreal-1", "ca-east")
	ctl.link(t, "r-nack", 3, nil, a, b)
	alice := ctl.join(t, a, "r-nack", "alice", all)
	bob := ctl.join(t, b, "r-nack", "bob", all)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := alice.Publish(ctx, signaltest.PublishOptions{Video: true, KeyframeInterval: time.Second}); err != nil {
		t.Fatal(err)
	}
	signaltest.Eventually(t, 30*time.Second, func() string {
		st, ok := bob.Track("alice", "video")
		if !ok || st.Packets < 300 || lossy.Dropped() < 20 {
			return signaltest.Reasonf("bob has %d video packets from alice; the leg dropped %d", st.Packets, lossy.Dropped())
		}
		return ""
	})
	injected := float64(lossy.Dropped()) / float64(lossy.Sent())
	// Let the last NACK round finish: 30 more packets.
	st0, _ := bob.Track("alice", "video")
	signaltest.Eventually(t, 10*time.Second, func() string {
		if st, _ := bob.Track("alice", "video"); st.Packets < st0.Packets+30 {
			return "waiting for more packets"
		}
		return ""
	})
	st, _ := bob.Track("alice", "video")
	// Only the range received before the last 30 packets counts (anything
	// newer may still be in recovery); packets past it arrived in order.
	span := st0.HighestSeq - st0.FirstSeq + 1
	unique := int64(st.Unique) - (st.HighestSeq - st0.HighestSeq)
	residual := float64(span-unique) / float64(span)
	rt := alice.RTCP()
	t.Logf("leg loss injected %.1f%% (%d of %d RTP packets); residual at bob %.2f%% of %d; NACKs to the publisher %d",
		injected*100, lossy.Dropped(), lossy.Sent(), residual*100, span, rt.NACKs)
	if residual >= injected/2 {
		t.Fatalf("residual loss at bob %.2f%% is not well below the %.2f%% lost on the leg: the leg's losses were not retransmitted", residual*100, injected*100)
	}
	if rt.NACKs != 0 || rt.NACKedPackets != 0 {
		t.Fatalf("the publisher got %d NACKs (%d packets) for losses on the leg: they should be answered by the upstream edge", rt.NACKs, rt.NACKedPackets)
	}
	if st.Duplicates > st.Packets/10 {
		t.Fatalf("%d duplicates forwarded to bob", st.Duplicates)
	}
}
