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

// removedFor lists the `removed` frames c got.
func removedFor(c *signaltest.Client) []string {
	var out []string
	for _, env := range c.Messages() {
		if env.Type == wire.TypeRemoved {
			out = append(out, string(env.Data))
		}
	}
	return out
}

// toldAbout lists the participant-joined/left frames about pid that c got
// after its first `from` messages.
func toldAbout(c *signaltest.Client, from int, pid string) []string {
	var out []string
	for _, env := range c.Messages()[from:] {
		if (env.Type == wire.TypeParticipantLeft || env.Type == wire.TypeParticipantJoined) && about(pid)(env) {
			out = append(out, env.Type+" "+string(env.Data))
		}
	}
	return out
}

// TestDuplicateAcrossEdges: one participant id connected to two edges of a
// room at once (two tabs, two devices) keeps one connection, the newest,
// as a second join on one edge does. The edge holding the older
// connection removes it (`removed {reason: duplicate}`) once the pair has
// lasted DuplicateGrace; the room never sees the id leave, and its media
// comes through the other edge. A participant moving between edges (on
// both until its client leaves the old one) is not a duplicate, and a
// duplicate join on one edge renews that edge's claim to the id.
func TestDuplicateAcrossEdges(t *testing.T) {
	const grace = 2 * time.Second
	opts := []any{
		func(c *cascade.Config) { c.DuplicateGrace = grace },
		func(c *signal.Config) { c.RemoteGrace = 3 * time.Second },
	}
	ctl := newControl(t)
	p1 := startEdge(t, ctl, "paris-1", "eu-west", opts...)
	m1 := startEdge(t, ctl, "montreal-1", "ca-east", opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sub := ticket.Permissions{Subscribe: true}
	videoFrom := func(c *signaltest.Client, pid string) int { n, _ := received(c, pid, "video"); return n }

	t.Run("the older connection goes", func(t *testing.T) {
		ctl.link(t, "r1", 10, nil, p1, m1)
		alice := ctl.join(t, p1, "r1", "alice", all)
		dave := ctl.join(t, p1, "r1", "dave", sub)
		bob := ctl.join(t, m1, "r1", "bob", sub)
		if err := alice.Publish(ctx, signaltest.PublishOptions{Video: true, KeyframeInterval: time.Second}); err != nil {
			t.Fatal(err)
		}
		signaltest.Eventually(t, 15*time.Second, func() string {
			if b, d := videoFrom(bob, "alice"), videoFrom(dave, "alice"); b == 0 || d == 0 {
				return signaltest.Reasonf("alice's video: bob %d packets, dave %d", b, d)
			}
			return ""
		})
		daveSeen, bobSeen := len(dave.Messages()), len(bob.Messages())

		// Her second tab, in Montréal. (The grace runs from when paris-1
		// hears of it, after this instant.)
		joining2 := time.Now()
		alice2 := ctl.join(t, m1, "r1", "alice", all)
		if err := alice2.Publish(ctx, signaltest.PublishOptions{Video: true, KeyframeInterval: time.Second}); err != nil {
			t.Fatal(err)
		}
		env := waitFor(t, alice, wire.TypeRemoved, nil)
		took := time.Since(joining2)
		if string(env.Data) != `{"reason":"duplicate"}` {
			t.Fatalf("the older connection got removed %s, want reason duplicate", env.Data)
		}
		if took < grace {
			t.Fatalf("the older connection was removed %v after the second join began, before the grace (%v)", took, grace)
		}
		t.Logf("the older connection was removed %v after the newer one joined", took.Round(10*time.Millisecond))

		daveBefore := videoFrom(dave, "alice")
		signaltest.Eventually(t, 15*time.Second, func() string {
			if d := videoFrom(dave, "alice") - daveBefore; d < 30 {
				return signaltest.Reasonf("alice's video to dave through montreal-1: +%d packets", d)
			}
			return ""
		})
		time.Sleep(grace + time.Second) // anything more would have happened by now
		if got := removedFor(alice2); len(got) != 0 {
			t.Errorf("the newer connection was removed too: %v", got)
		}
		// While both were in the room, neither connection was sent the
		// other's media: it is alice's own.
		for name, c := range map[string]*signaltest.Client{"Paris": alice, "Montréal": alice2} {
			if n := videoFrom(c, "alice"); n != 0 {
				t.Errorf("alice's %s connection was sent %d packets of her own video from the other", name, n)
			}
		}
		for name, c := range map[string]*signaltest.Client{"dave": dave, "bob": bob} {
			from := map[string]int{"dave": daveSeen, "bob": bobSeen}[name]
			if got := toldAbout(c, from, "alice"); len(got) != 0 {
				t.Errorf("%s was told alice left or joined: %v", name, got)
			}
		}
	})

	t.Run("a pair found when the legs come up", func(t *testing.T) {
		// Both connections exist before the edges link (the second tab's
		// edge is added to the room's placement as it joins): each edge
		// learns of the other's from a welcome, and the connection times
		// decide which goes.
		hank := ctl.join(t, p1, "r4", "hank", all)
		time.Sleep(50 * time.Millisecond)
		hank2 := ctl.join(t, m1, "r4", "hank", all)
		ctl.link(t, "r4", 10, nil, p1, m1)
		env := waitFor(t, hank, wire.TypeRemoved, nil)
		if string(env.Data) != `{"reason":"duplicate"}` {
			t.Fatalf("the older connection got removed %s, want reason duplicate", env.Data)
		}
		time.Sleep(grace + time.Second)
		if got := removedFor(hank2); len(got) != 0 {
			t.Errorf("the newer connection was removed too: %v", got)
		}
	})

	t.Run("a move is not a duplicate", func(t *testing.T) {
		ctl.link(t, "r2", 10, nil, p1, m1)
		carol := ctl.join(t, p1, "r2", "carol", all)
		erin := ctl.join(t, m1, "r2", "erin", sub)
		waitFor(t, erin, wire.TypeParticipantJoined, about("carol"))
		carol2 := ctl.join(t, m1, "r2", "carol", all)
		// Her client leaves the old edge once admitted on the new one.
		time.Sleep(200 * time.Millisecond)
		if err := carol.Send(wire.TypeLeave, wire.Leave{Reason: wire.ReasonMoved}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(grace + time.Second)
		if got := removedFor(carol); len(got) != 0 {
			t.Errorf("the moving participant's old connection was removed: %v", got)
		}
		if got := removedFor(carol2); len(got) != 0 {
			t.Errorf("the moving participant's new connection was removed: %v", got)
		}
	})

	t.Run("a second join on one edge renews its claim", func(t *testing.T) {
		ctl.link(t, "r3", 10, nil, p1, m1)
		frank := ctl.join(t, p1, "r3", "frank", all)
		frank2 := ctl.join(t, m1, "r3", "frank", all) // newer than frank on paris-1…
		time.Sleep(grace / 3)
		frank3 := ctl.join(t, p1, "r3", "frank", all) // …and this newer still: it takes over on paris-1
		waitFor(t, frank, wire.TypeRemoved, nil)      // the same edge's takeover
		env := waitFor(t, frank2, wire.TypeRemoved, nil)
		if string(env.Data) != `{"reason":"duplicate"}` {
			t.Fatalf("montreal-1's connection got removed %s, want reason duplicate", env.Data)
		}
		time.Sleep(grace + time.Second)
		if got := removedFor(frank3); len(got) != 0 {
			t.Errorf("the newest connection was removed: %v", got)
		}
	})
}
