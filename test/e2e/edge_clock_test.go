package e2e

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/edge/agent"
	"github.com/meridian-video/meridian/edge/edgenode"
	"github.com/meridian-video/meridian/edge/signal/signaltest"
	"github.com/meridian-video/meridian/test/procs"
)

// TestEdgeClockOffset: an edge whose clock runs 45 s ahead of the control
// plane's measures the offset from heartbeat replies, warns once in its
// log, and an operator reads it in /admin/v1/edges through every control
// node (the one the edge talks to and, through the leader's view, the
// others). An edge in step reports an offset near zero and does not warn.
func TestEdgeClockOffset(t *testing.T) {
	c := placementCluster(t, 3, time.Minute)
	const skew = 45 * time.Second
	ahead, inStep := procs.NewLogBuffer(1<<20), procs.NewLogBuffer(1<<20)
	logTo := func(w *procs.LogBuffer) func(*agent.Config) {
		return func(cfg *agent.Config) { cfg.Logger = slog.New(slog.NewTextHandler(w, nil)) }
	}
	fast := startAgentAt(t, c, "paris-1", "eu-west", "http://127.0.0.1:1", logTo(ahead), func(cfg *agent.Config) {
		cfg.Now = func() time.Time { return time.Now().Add(skew) }
	})
	ok := startAgentAt(t, c, "paris-2", "eu-west", "http://127.0.0.1:1", logTo(inStep))
	near := func(ms *int64, want time.Duration) bool {
		return ms != nil && (time.Duration(*ms)*time.Millisecond-want).Abs() < time.Second
	}
	clustertest.Eventually(t, 10*time.Second, func() string {
		f, fok := fast.ClockOffset()
		o, ook := ok.ClockOffset()
		if !fok || (f-skew).Abs() >= time.Second || !ook || o.Abs() >= time.Second {
			return fmt.Sprintf("the edges measured %v (%v) and %v (%v)", f, fok, o, ook)
		}
		return ""
	})
	for node := range c.Nodes() {
		clustertest.Eventually(t, 10*time.Second, func() string {
			var out struct {
				Data []struct {
					ID            string
					ClockOffsetMs *int64
				}
			}
			r := c.Do(node, "GET", "/admin/v1/edges?consistent=true", "Bearer "+c.AdminToken, nil)
			r.JSON(t, &out)
			got := map[string]*int64{}
			for _, e := range out.Data {
				got[e.ID] = e.ClockOffsetMs
			}
			if r.Status != 200 || !near(got["paris-1"], skew) || !near(got["paris-2"], 0) {
				return fmt.Sprintf("node%d: %d %s", node, r.Status, r.Body)
			}
			return ""
		})
	}
	time.Sleep(500 * time.Millisecond) // several more heartbeats
	if n := strings.Count(ahead.String(), "clock is off"); n != 1 {
		t.Errorf("the edge 45 s ahead warned %d times, want once:\n%s", n, ahead.String())
	}
	if strings.Contains(inStep.String(), "clock is off") {
		t.Errorf("the edge in step warned:\n%s", inStep.String())
	}
}

// TestEdgeWithAWrongClock: a real edge whose clock is off by 30 s either
// way, or 90 s ahead (more than a ticket's life, so by its own clock every
// ticket has expired), admits participants with fresh tickets, and the
// times it reports are the control plane's: the session's timeline and its
// session-started webhook say when alice joined, and her stats samples when
// they were taken, not 30 or 90 s off.
func TestEdgeWithAWrongClock(t *testing.T) {
	for _, skew := range []time.Duration{30 * time.Second, -30 * time.Second, 90 * time.Second} {
		t.Run(fmt.Sprintf("%v", skew), func(t *testing.T) { edgeWithAWrongClock(t, skew) })
	}
}

func edgeWithAWrongClock(t *testing.T, skew time.Duration) {
	s := startStack(t, func(c *edgenode.Config) { c.Clock = func() time.Time { return time.Now().Add(skew) } })
	recv := newReceiver(t)
	recv.accept.Store(true)
	var room struct{ RoomID string }
	s.c.Do(0, "POST", "/v2/rooms", s.c.Token(), map[string]any{"webhook": map[string]any{"endPoint": recv.srv.URL, "events": []string{"session-started"}}}).JSON(t, &room)
	before := time.Now()
	s.join(t, room.RoomID, "alice", false)
	after := time.Now()
	inWindow := func(at time.Time) bool {
		return !at.Before(before.Add(-time.Second)) && !at.After(after.Add(time.Second))
	}
	signaltest.Eventually(t, 10*time.Second, func() string {
		ss := session(t, s.c, 0, room.RoomID)
		if ss == nil || len(ss.Participants) != 1 {
			return fmt.Sprintf("session: %+v", ss)
		}
		if start := ss.Participants[0].Timelog[0].Start; !inWindow(start) {
			return fmt.Sprintf("alice's timeline starts at %v; she joined between %v and %v", start, before, after)
		}
		if !inWindow(ss.Start) {
			return fmt.Sprintf("the session starts at %v", ss.Start)
		}
		return ""
	})
	// The stats the edge sends every second are stamped by the same clock.
	signaltest.Eventually(t, 10*time.Second, func() string {
		ss := session(t, s.c, 0, room.RoomID)
		var samples []state.StatsSample
		s.c.Node(0).Node().FSM().Read(func(st *state.Store) { samples = st.SessionStats(ss.ID) })
		if len(samples) == 0 {
			return "no stats yet"
		}
		if at := samples[len(samples)-1].Time; at.Sub(time.Now()).Abs() > 2*time.Second {
			return fmt.Sprintf("the latest stats sample is stamped %v, now is %v", at, time.Now())
		}
		return ""
	})
	var start string
	signaltest.Eventually(t, 10*time.Second, func() string {
		for _, d := range recv.deliveries() {
			var env struct{ Data struct{ Start string } }
			if d.typ == "session-started" && json.Unmarshal(d.body, &env) == nil {
				start = env.Data.Start
				return ""
			}
		}
		return "no session-started webhook yet"
	})
	if at, err := time.Parse("2006-01-02T15:04:05.000-07:00", start); err != nil || !inWindow(at) {
		t.Errorf("session-started says %q (%v); alice joined between %v and %v", start, err, before, after)
	}
}
