package agent

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/meridian-video/meridian/shared/edgeapi"
	"github.com/meridian-video/meridian/shared/egressapi"
)

// TestMeasureClock: the offset is the edge's clock minus the control
// plane's whatever the time the control node spent answering and whichever
// way the clocks differ; a round trip over a second, or a reply without the
// control node's times, measures nothing; ControlNow corrects from 250 ms.
func TestMeasureClock(t *testing.T) {
	ctl := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC) // the control plane's "now" as the call is sent
	for _, c := range []struct {
		skew, oneWay, answering time.Duration
		measured                bool
	}{
		{45 * time.Second, 20 * time.Millisecond, 300 * time.Millisecond, true},
		{-3 * time.Second, 5 * time.Millisecond, 0, true},
		{100 * time.Millisecond, 80 * time.Millisecond, 2 * time.Second, true},
		{10 * time.Second, 600 * time.Millisecond, 0, false}, // a 1.2 s round trip
	} {
		edge := ctl.Add(c.skew)
		a := &Agent{cfg: Config{Now: func() time.Time { return edge.Add(c.oneWay*2 + c.answering) }}}
		a.log = slog.New(slog.NewTextHandler(io.Discard, nil))
		arrived := ctl.Add(c.oneWay)
		answered := arrived.Add(c.answering)
		a.measureClock(edge, edge.Add(2*c.oneWay+c.answering), arrived, answered)
		off, ok := a.ClockOffset()
		if ok != c.measured || ok && off != c.skew {
			t.Errorf("skew %v, one way %v, answering %v: measured %v (%v)", c.skew, c.oneWay, c.answering, off, ok)
		}
		if !ok {
			continue
		}
		want := a.cfg.Now()
		if c.skew.Abs() >= clockCorrectAfter {
			want = want.Add(-c.skew)
		}
		if got := a.ControlNow(); !got.Equal(want) {
			t.Errorf("skew %v: ControlNow %v, want %v", c.skew, got, want)
		}
	}
	a := &Agent{cfg: Config{Now: time.Now}}
	a.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	a.measureClock(ctl, ctl.Add(time.Millisecond), time.Time{}, time.Time{})
	if _, ok := a.ClockOffset(); ok {
		t.Error("a reply without the control node's times measured an offset")
	}
}

// TestEventsStampedByControlTime: an event queued without a time (an egress
// job's status) gets the corrected clock's, like every reported time, and
// the job's start and stop times are corrected the same way.
func TestEventsStampedByControlTime(t *testing.T) {
	const skew = 30 * time.Second
	a, err := New(Config{ControlURLs: []string{"http://127.0.0.1:1"}, EdgeToken: "t",
		Register: edgeapi.Register{EdgeID: "e1", Region: "local", SignalURL: "ws://x/rtc"},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return time.Now().Add(skew) }})
	if err != nil {
		t.Fatal(err)
	}
	ctl := time.Now()
	a.measureClock(ctl.Add(skew), ctl.Add(skew+2*time.Millisecond), ctl.Add(time.Millisecond), ctl.Add(time.Millisecond))
	started := time.Now().Add(-time.Minute)
	a.ReportEgress(egressapi.Status{ID: "job1", RoomID: "r1", StartedAt: started.Add(skew)})
	a.mu.Lock()
	ev := a.queue[0]
	a.mu.Unlock()
	if d := ev.At.Sub(time.Now()).Abs(); d > time.Second {
		t.Errorf("the event is stamped %v, %v from the control plane's time", ev.At, d)
	}
	// The job's own times, taken by the machine's clock, are brought to it too.
	if d := ev.Egress.StartedAt.Sub(started).Abs(); d > time.Second || !ev.Egress.StoppedAt.IsZero() {
		t.Errorf("the job started at %v by the control plane's clock; reported %v, stopped %v", started, ev.Egress.StartedAt, ev.Egress.StoppedAt)
	}
}
