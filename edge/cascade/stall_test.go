package cascade_test

import (
	"context"
	"testing"
	"time"

	"github.com/meridian-video/meridian/edge/cascade"
	"github.com/meridian-video/meridian/edge/signal"
	"github.com/meridian-video/meridian/edge/signal/signaltest"
	wire "github.com/meridian-video/meridian/shared/signal"
	"github.com/meridian-video/meridian/shared/ticket"
)

// TestStalledEdgeDoesNotTakeBackAMovedParticipant: paris-1 stalls (a
// stopped process) with alice on it; the control plane drops it from the
// room, alice moves to paris-2 and montréal-1 shows her from there. When
// paris-1 resumes it still lists alice (her socket died during the stall:
// she is in its resume grace) and is added back to the room, so
// montréal-1's new leg to paris-1 announces her again, with the time of
// her old connection. The newer connection is the one montréal-1 keeps
// relaying: bob goes on receiving her video through paris-2, nobody is
// told she left when paris-1 removes its stale copy (a `moved` leave after
// DuplicateGrace), and a subscriber joining montréal-1 afterwards gets her
// video. Before, the stale announcement took her over from paris-2's leg,
// whose copy was dropped for good: her video stopped, the room was told
// she left, and a new subscriber got nothing.
func TestStalledEdgeDoesNotTakeBackAMovedParticipant(t *testing.T) {
	const dupGrace, remoteGrace = 2 * time.Second, 3 * time.Second
	opts := []any{
		func(c *cascade.Config) { c.DuplicateGrace = dupGrace },
		func(c *signal.Config) { c.RemoteGrace = remoteGrace },
	}
	ctl := newControl(t)
	p1 := startEdge(t, ctl, "paris-1", "eu-west", opts...)
	p2 := startEdge(t, ctl, "paris-2", "eu-west", opts...)
	m1 := startEdge(t, ctl, "montreal-1", "ca-east", opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sub := ticket.Permissions{Subscribe: true}

	ctl.link(t, "r1", 10, nil, p1, m1)
	alice := ctl.join(t, p1, "r1", "alice", all)
	bob := ctl.join(t, m1, "r1", "bob", sub)
	if err := alice.Publish(ctx, signaltest.PublishOptions{Video: true, KeyframeInterval: time.Second}); err != nil {
		t.Fatal(err)
	}
	gainsAliceVideo(t, "bob, alice on paris-1", bob, 15*time.Second)

	// The stall: paris-1 leaves the room's placement, alice's client gives
	// up on it (no leave reaches it) and joins paris-2.
	ctl.link(t, "r1", 11, nil, p2, m1)
	alice.Close()
	alice2 := ctl.join(t, p2, "r1", "alice", all)
	if err := alice2.Publish(ctx, signaltest.PublishOptions{Video: true, KeyframeInterval: time.Second}); err != nil {
		t.Fatal(err)
	}
	gainsAliceVideo(t, "bob, alice on paris-2", bob, 15*time.Second)
	bobSeen := len(bob.Messages())

	// paris-1 resumes and is placed in the room again.
	resumed := time.Now()
	ctl.link(t, "r1", 12, nil, p1, p2, m1)
	// Past paris-1's removal of its stale copy and the grace of its leave.
	time.Sleep(dupGrace + remoteGrace + 2*time.Second)
	gainsAliceVideo(t, "bob, after paris-1 resumed", bob, 5*time.Second)
	if got := toldAbout(bob, bobSeen, "alice"); len(got) != 0 {
		t.Errorf("bob was told alice left or joined after paris-1 resumed: %v", got)
	}
	carol := ctl.join(t, m1, "r1", "carol", sub)
	gainsAliceVideo(t, "carol, a new subscriber on montreal-1", carol, 10*time.Second)
	listed := false
	for _, p := range carol.Joined().Participants {
		listed = listed || p.ParticipantID == "alice"
	}
	if got := toldAbout(carol, 0, "alice"); !listed && len(got) == 0 {
		t.Errorf("carol was never told alice is in the room")
	}
	for _, env := range carol.Messages() {
		if env.Type == wire.TypeParticipantLeft && about("alice")(env) {
			t.Errorf("carol was told alice left: %s", env.Data)
		}
	}
	t.Logf("alice's media reaches montreal-1 through paris-2 %v after paris-1 resumed", time.Since(resumed).Round(10*time.Millisecond))
}

// TestOlderCopyShownAgainWhenTheNewerLeaves: alice is in the room through
// paris-1 and opens it again through paris-2 (a second tab); montréal-1
// shows the newer connection, relayed from paris-2. When that tab closes
// before the pair is settled, alice is still in the room through paris-1:
// montréal-1 shows her from there again (its leg to paris-1 is set up
// again to carry her tracks), bob receives her video and is never told she
// left. Before, paris-1's copy had been dropped from its leg for good: bob
// was told she left and never got her media again.
func TestOlderCopyShownAgainWhenTheNewerLeaves(t *testing.T) {
	opts := []any{
		func(c *cascade.Config) { c.DuplicateGrace = time.Minute },
		func(c *signal.Config) { c.RemoteGrace = 3 * time.Second },
	}
	ctl := newControl(t)
	p1 := startEdge(t, ctl, "paris-1", "eu-west", opts...)
	p2 := startEdge(t, ctl, "paris-2", "eu-west", opts...)
	m1 := startEdge(t, ctl, "montreal-1", "ca-east", opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ctl.link(t, "r1", 10, nil, p1, p2, m1)
	alice := ctl.join(t, p1, "r1", "alice", all)
	bob := ctl.join(t, m1, "r1", "bob", ticket.Permissions{Subscribe: true})
	if err := alice.Publish(ctx, signaltest.PublishOptions{Video: true, KeyframeInterval: time.Second}); err != nil {
		t.Fatal(err)
	}
	gainsAliceVideo(t, "bob, alice on paris-1", bob, 15*time.Second)
	bobSeen := len(bob.Messages())

	time.Sleep(50 * time.Millisecond) // a later connection, by the edges' clocks
	alice2 := ctl.join(t, p2, "r1", "alice", all)
	if err := alice2.Publish(ctx, signaltest.PublishOptions{Video: true, KeyframeInterval: time.Second}); err != nil {
		t.Fatal(err)
	}
	gainsAliceVideo(t, "bob, alice's second tab", bob, 15*time.Second)
	if err := alice2.Leave(); err != nil {
		t.Fatal(err)
	}
	left := time.Now()
	gainsAliceVideo(t, "bob, after the second tab closed", bob, 10*time.Second)
	t.Logf("alice's video through paris-1 again %v after her second tab closed", time.Since(left).Round(10*time.Millisecond))
	time.Sleep(3*time.Second + time.Second) // past the grace of the leave
	if got := toldAbout(bob, bobSeen, "alice"); len(got) != 0 {
		t.Errorf("bob was told alice left or joined: %v", got)
	}
	gainsAliceVideo(t, "bob, in the end", bob, 5*time.Second)
}

// gainsAliceVideo waits until c has received at least 30 more packets of
// alice's video, within the given time.
func gainsAliceVideo(t *testing.T, what string, c *signaltest.Client, within time.Duration) {
	t.Helper()
	videoFrom := func() int { n, _ := received(c, "alice", "video"); return n }
	before := videoFrom()
	signaltest.Eventually(t, within, func() string {
		if d := videoFrom() - before; d < 30 {
			return signaltest.Reasonf("%s: +%d packets of alice's video", what, d)
		}
		return ""
	})
}
