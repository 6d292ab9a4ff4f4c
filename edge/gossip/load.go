package gossip

import (
	"math"
)

// What an edge gossips about its load is coarse, and a load-only change is
// published at most once per MetaMinInterval: every publication is a full
// alive message that memberlist retransmits to the whole region, so meta
// that followed every join, leave and CPU wobble made a busy 10-edge region
// cost 27-31 kbit/s per edge in gossip alone (docs/multi-edge.md, "Gossip
// traffic"). Placement reads an edge's load from the edge's own heartbeats
// first; the region's word is the fallback for a control node that does not
// hear the edge, so a count a few seconds old costs nothing there, while a change
// placement must act on at once (draining, capacity, full) is still
// published at the next tick.

// Coarse steps of the gossiped load. Participant, track and room counts stay
// exact: placement compares participants with capacity.
const (
	cpuStepMilli = 50      // CPU in 5 % steps (wire: thousandths)
	egressStep   = 250_000 // egress in 250 kbit/s steps
	// A coarse value moves to a new step only when the raw value is more
	// than this fraction of a step away from the published one, so a load
	// sitting on a rounding boundary does not flip the meta at every tick.
	hysteresis = 0.75
)

// coarsen rounds the load of next for publication, keeping prev's value of
// CPU and egress while the raw value stays within the hysteresis band around
// it. prev is the last published meta (zero before the first).
func coarsen(next, prev wireMeta) wireMeta {
	next.CPUMilli = coarseStep(next.CPUMilli, prev.CPUMilli, cpuStepMilli)
	next.EgressBps = coarseStep(next.EgressBps, prev.EgressBps, egressStep)
	return next
}

// coarseStep rounds raw to a multiple of step, or keeps prev (already a
// multiple) while |raw-prev| <= hysteresis*step.
func coarseStep(raw, prev, step int64) int64 {
	if math.Abs(float64(raw)-float64(prev)) <= hysteresis*float64(step) {
		return prev
	}
	return int64(math.Round(float64(raw)/float64(step))) * step
}

// urgent reports whether next differs from prev in something placement acts
// on at once: anything but the load, or the edge becoming full. Such a
// change is published at the next tick; a load-only change (an edge no
// longer full included: it only means placement may use it again) waits for
// MetaMinInterval, so an edge whose count hovers at its capacity publishes
// at most twice per interval.
func urgent(next, prev wireMeta) bool {
	a, b := next, prev
	a.Participants, a.Tracks, a.Rooms, a.CPUMilli, a.EgressBps = 0, 0, 0, 0, 0
	b.Participants, b.Tracks, b.Rooms, b.CPUMilli, b.EgressBps = 0, 0, 0, 0, 0
	if a != b {
		return true
	}
	full := func(w wireMeta) bool { return w.Capacity > 0 && w.Participants >= w.Capacity }
	return full(next) && !full(prev)
}
