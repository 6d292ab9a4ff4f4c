package cascade_test

import (
	"context"
	"testing"
	"time"

	"github.com/meridian-video/meridian/edge/signal"
	"github.com/meridian-video/meridian/edge/signal/signaltest"
	wire "github.com/meridian-video/meridian/shared/signal"
	"github.com/meridian-video/meridian/shared/ticket"
)

// TestCascadeMoveIsNotALeave: alice moves from paris-1 to paris-2 (make
// before break: admitted on paris-2, then `leave {reason:"moved"}` on
// paris-1) while the other edges do not know yet that paris-2 serves the
// room — the order a drain produces when the legs to the new edge are
// still opening. Neither bob on montreal-1 nor dave, who stays on paris-1,
// is ever told she left or joined: her tracks come back through paris-2.
// A move that never completes (she leaves paris-2 as "moved" and appears
// nowhere) is a leave once the grace period is over.
func TestCascadeMoveIsNotALeave(t *testing.T) {
	// Long enough for the legs to paris-2 to open on a loaded machine: a
	// leg slower than that would be a (correct) leave, and a failed test.
	const grace = 6 * time.Second
	withGrace := func(c *signal.Config) { c.RemoteGrace = grace }
	ctl := newControl(t)
	p1 := startEdge(t, ctl, "paris-1", "eu-west", withGrace)
	p2 := startEdge(t, ctl, "paris-2", "eu-west", withGrace)
	m1 := startEdge(t, ctl, "montreal-1", "ca-east", withGrace)
	ctl.link(t, "r1", 10, nil, p1, m1)

	alice := ctl.join(t, p1, "r1", "alice", all)
	dave := ctl.join(t, p1, "r1", "dave", ticket.Permissions{Subscribe: true})
	bob := ctl.join(t, m1, "r1", "bob", ticket.Permissions{Subscribe: true})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := alice.Publish(ctx, signaltest.PublishOptions{Video: true, KeyframeInterval: time.Second}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, bob, wire.TypeParticipantJoined, about("alice"))
	videoFrom := func(c *signaltest.Client) int { n, _ := received(c, "alice", "video"); return n }
	signaltest.Eventually(t, 15*time.Second, func() string {
		if b, d := videoFrom(bob), videoFrom(dave); b == 0 || d == 0 {
			return signaltest.Reasonf("alice's video: bob %d packets, dave %d", b, d)
		}
		return ""
	})

	// The move: paris-2 admits alice before the room's other edges link to
	// it, then she leaves paris-1 saying she moved.
	seenBefore := map[*signaltest.Client]int{bob: len(bob.Messages()), dave: len(dave.Messages())}
	alice2 := ctl.join(t, p2, "r1", "alice", all)
	if err := alice2.Publish(ctx, signaltest.PublishOptions{Video: true, KeyframeInterval: time.Second}); err != nil {
		t.Fatal(err)
	}
	if err := alice.Send(wire.TypeLeave, wire.Leave{Reason: wire.ReasonMoved}); err != nil {
		t.Fatal(err)
	}
	movedAt := time.Now()
	time.Sleep(300 * time.Millisecond) // the leave has crossed to montreal-1 by now
	ctl.link(t, "r1", 11, nil, p1, p2, m1)
	bobBefore, daveBefore := videoFrom(bob), videoFrom(dave)
	signaltest.Eventually(t, 20*time.Second, func() string {
		if b, d := videoFrom(bob)-bobBefore, videoFrom(dave)-daveBefore; b < 50 || d < 50 {
			return signaltest.Reasonf("alice's video through paris-2: bob +%d packets, dave +%d", b, d)
		}
		return ""
	})
	t.Logf("alice's video reaches bob and dave through paris-2 %v after her moved leave", time.Since(movedAt).Round(10*time.Millisecond))
	// Past the grace period of the leave on paris-1, and then some.
	time.Sleep(time.Until(movedAt.Add(grace + time.Second)))
	for name, c := range map[string]*signaltest.Client{"bob": bob, "dave": dave} {
		for _, env := range c.Messages()[seenBefore[c]:] {
			if (env.Type == wire.TypeParticipantLeft || env.Type == wire.TypeParticipantJoined) && about("alice")(env) {
				t.Errorf("%s was told during alice's move: %s %s", name, env.Type, env.Data)
			}
		}
	}

	// A move that never completes: after the grace period, it was a leave.
	if err := alice2.Send(wire.TypeLeave, wire.Leave{Reason: wire.ReasonMoved}); err != nil {
		t.Fatal(err)
	}
	leftAt := time.Now()
	for name, c := range map[string]*signaltest.Client{"bob": bob, "dave": dave} {
		env := waitFor(t, c, wire.TypeParticipantLeft, about("alice"))
		took := time.Since(leftAt)
		t.Logf("%s told alice left %v after her unfinished move", name, took.Round(10*time.Millisecond))
		if took < grace {
			t.Errorf("%s was told alice left %v after her moved leave, before the %v grace period: %s", name, took, grace, env.Data)
		}
		if d, _ := signaltest.Decode[wire.ParticipantLeft](env); d.Reason != wire.ReasonLeft {
			t.Errorf("%s: participant-left reason %q, want %q", name, d.Reason, wire.ReasonLeft)
		}
	}
}
