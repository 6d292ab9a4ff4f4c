package sfu

import (
	"math/rand/v2"
	"testing"

	"github.com/pion/interceptor/pkg/twcc"
)

// bweSim drives a twccSender through a simulated path: 1000-byte packets
// sent at a fixed rate, arriving after a base delay plus a queue that
// grows by queueGrowthUs per 100 ms, lost with probability loss; pion's
// transport-cc recorder (what a pion receiver runs) builds the feedback
// every 100 ms. It returns the estimate after seconds of simulated time.
func bweSim(t *testing.T, rateBps int, seconds float64, queueGrowthUs int64, loss float64) (est int, acked float64) {
	t.Helper()
	return bweSimAt(t, 0, rateBps, seconds, queueGrowthUs, loss)
}

// bweSimAt is bweSim on clocks (the edge's and the receiver's) that start
// at t0 ns.
func bweSimAt(t *testing.T, t0 int64, rateBps int, seconds float64, queueGrowthUs int64, loss float64) (est int, acked float64) {
	t.Helper()
	tw := newTWCCSender(1_000_000, 100_000, 8_000_000)
	rec := twcc.NewRecorder(1)
	rng := rand.New(rand.NewPCG(3, 4))
	const size = 1000
	interval := int64(size*8) * 1e9 / int64(rateBps) // ns between packets
	var queue int64
	next := int64(0)
	for tick := int64(1); float64(tick)*0.1 <= seconds; tick++ {
		end := tick * 100e6
		for ; next < end; next += interval {
			seq := tw.nextSeq()
			tw.sent(seq, size, t0+next)
			if rng.Float64() < loss {
				continue
			}
			rec.Record(7, seq, (t0+next)/1000+20_000+queue)
		}
		queue += queueGrowthUs
		for _, p := range rec.BuildFeedbackPacket() {
			raw, err := p.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			var h recordingHandler
			if err := walkRTCP(raw, &h); err != nil {
				t.Fatal(err)
			}
			for _, fci := range h.twcc {
				tw.onFeedback(fci, t0+end)
			}
		}
	}
	tw.mu.Lock()
	acked = tw.e.acked
	tw.mu.Unlock()
	return tw.Estimate(), acked
}

// TestEstimatorFollowsThePath: the estimate grows on a clean path, falls
// below the delivered rate when a queue builds up, and falls under heavy
// loss; it never leaves [MinBitrate, MaxBitrate].
func TestEstimatorFollowsThePath(t *testing.T) {
	if est, _ := bweSim(t, 800_000, 10, 0, 0); est < 1_800_000 || est > 8_000_000 {
		t.Errorf("clean path for 10 s: estimate %d, want it grown from 1 Mbit/s at ~8 %%/s", est)
	}
	if est, _ := bweSim(t, 800_000, 10, 0, 0.01); est < 1_500_000 {
		t.Errorf("1 %% loss for 10 s: estimate %d, want it still growing", est)
	}
	// The path delivers 800 kbit/s × 100/(100+4): a queue grows 4 ms per 100 ms.
	est, acked := bweSim(t, 800_000, 5, 4000, 0)
	if acked < 700_000 || acked > 800_000 {
		t.Errorf("acknowledged rate %.0f, want about 770 kbit/s", acked)
	}
	if float64(est) > bweBackoff*acked*1.01 {
		t.Errorf("growing queue: estimate %d, want at most %.0f (%.2f × acknowledged %.0f)", est, bweBackoff*acked, bweBackoff, acked)
	}
	if est, _ := bweSim(t, 800_000, 3, 0, 0.2); est > 300_000 || est < 100_000 {
		t.Errorf("20 %% loss for 3 s: estimate %d, want it down near the 100 kbit/s floor", est)
	}
}

// TestEstimatorAcrossTheSendTimeWrap: the send history keeps send times in
// 32 bits of microseconds, which wrap every 71 minutes of uptime; an edge
// whose clock crosses the wrap during a call estimates exactly as one that
// does not.
func TestEstimatorAcrossTheSendTimeWrap(t *testing.T) {
	const wrap = int64(1) << 32 * 1000 // ns
	for _, c := range []struct {
		growth int64
		loss   float64
	}{{0, 0}, {4000, 0}, {0, 0.05}} {
		est0, acked0 := bweSimAt(t, 0, 800_000, 5, c.growth, c.loss)
		for _, t0 := range []int64{wrap - 2_500_000_000, 3*wrap - 1_000_000} {
			est, acked := bweSimAt(t, t0, 800_000, 5, c.growth, c.loss)
			if est != est0 || acked != acked0 {
				t.Errorf("queue growth %d µs, loss %v, clock from %d ns: estimate %d, acknowledged %.0f; from 0: %d, %.0f",
					c.growth, c.loss, t0, est, acked, est0, acked0)
			}
		}
	}
}

// TestTWCCStampingDoesNotAllocate: the send side of transport-cc (sequence
// number, history) and the feedback path allocate nothing.
func TestTWCCStampingDoesNotAllocate(t *testing.T) {
	tw := newTWCCSender(1_000_000, 100_000, 8_000_000)
	rec := twcc.NewRecorder(1)
	for i := 0; i < 50; i++ {
		seq := tw.nextSeq()
		tw.sent(seq, 1000, int64(i)*1e6)
		rec.Record(7, seq, int64(i)*1000+500)
	}
	raw, _ := rec.BuildFeedbackPacket()[0].Marshal()
	var h recordingHandler
	_ = walkRTCP(raw, &h)
	fci := h.twcc[0]
	now := int64(1e9)
	if a := testing.AllocsPerRun(200, func() {
		seq := tw.nextSeq()
		tw.sent(seq, 1000, now)
		now += 1e6
		tw.onFeedback(fci, now)
		_ = walkRTCP(raw, nopRTCP{})
	}); a != 0 {
		t.Fatalf("%v allocations", a)
	}
}

type nopRTCP struct{}

func (nopRTCP) keyframeRequest(uint32)      {}
func (nopRTCP) nack(uint32, uint16, uint16) {}
func (nopRTCP) report(reportBlock)          {}
func (nopRTCP) transportCC(uint32, []byte)  {}
