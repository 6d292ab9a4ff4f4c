package main

import (
	"math"
	"testing"
	"time"
)

// Two snapshots 10 s apart: 2 subscribers, the publisher sent 2,000
// packets (1,500 video, 500 audio), the server used 0.2 s of CPU (70 ms of
// it in the kernel) and was using 1 % of a core with the publisher alone.
func windowPair() (a, b snapshot, idle cpuSample) {
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	a = snapshot{
		at: t0, recv: 1000, sent: 100, video: 75, audio: 25, recvVideo: 750, recvAudio: 250,
		perSub: []uint64{500, 500}, expected: 1000,
		srvCPU: time.Second, srvSys: 300 * time.Millisecond, coreBusy: 2 * time.Second, coreSteal: 0,
	}
	b = snapshot{
		at: t0.Add(10 * time.Second), recv: 1000 + 3500, sent: 2100, video: 1575, audio: 525,
		recvVideo: 750 + 2500, recvAudio: 250 + 1000,
		perSub: []uint64{500 + 2000, 500 + 1500}, expected: 1000 + 4000,
		srvCPU: time.Second + 200*time.Millisecond, srvSys: 300*time.Millisecond + 70*time.Millisecond, coreBusy: 2*time.Second + 500*time.Millisecond, coreSteal: 100 * time.Millisecond,
	}
	idle = cpuSample{at0: t0.Add(-5 * time.Second), at1: t0.Add(-3 * time.Second), cpu0: 0, cpu1: 20 * time.Millisecond}
	return a, b, idle
}

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestMeasureCPUPerForwardedPacket(t *testing.T) {
	a, b, idle := windowPair()
	r := rowResult{Subs: 2}
	r.measure(a, b, idle, true, true)

	near(t, "window", r.Window, 10)
	near(t, "sent pkt/s", r.SentPPS, 200)
	near(t, "forwarded pkt/s", r.FwdPPS, 350)
	// 3,500 received of 2,000 sent × 2 subscribers.
	near(t, "delivery %", r.DeliveryPct, 87.5)
	near(t, "video delivery %", r.VideoDeliveryPct, 100*2500.0/3000)
	near(t, "audio delivery %", r.AudioDeliveryPct, 100)
	// Sequence numbers advanced by 4,000, 3,500 arrived.
	near(t, "seq loss %", r.LossPct, 12.5)
	// 0.2 s of server CPU over 3,500 packets.
	near(t, "µs/fwd pkt", r.ServerUsPerPkt, 200000.0/3500)
	near(t, "of which in the kernel", r.ServerKernelUsPerPkt, 70000.0/3500)
	near(t, "server CPU %", r.ServerCPUPct, 2)
	// Idle: 20 ms over 2 s = 1 % of a core, so 0.1 s of the window's 0.2 s
	// is the publisher-alone cost; the other 0.1 s is per packet.
	near(t, "idle CPU %", r.IdleCPUPct, 1)
	near(t, "marginal µs/pkt", r.MarginalUsPerPkt, 100000.0/3500)
	// The core was busy 0.5 s, 0.2 s of it the server.
	near(t, "other load on the server core %", r.OtherCPUPct, 3)
	near(t, "steal %", r.StealPct, 1)
	// Subscriber 2 got 1,500 of 2,000: below 90 %.
	if r.StarvedSubs != 1 {
		t.Errorf("starved subscribers = %d, want 1", r.StarvedSubs)
	}
	near(t, "worst subscriber %", r.MinSubDeliveryPct, 75)
}

func TestMeasureMarginalNeverNegative(t *testing.T) {
	a, b, idle := windowPair()
	// Idle at 5 % of a core is more than the 2 % measured in the window
	// (noise on a shared core): the marginal cost is 0, not negative.
	idle.cpu1 = 100 * time.Millisecond
	r := rowResult{Subs: 2}
	r.measure(a, b, idle, true, true)
	near(t, "idle CPU %", r.IdleCPUPct, 5)
	near(t, "marginal µs/pkt", r.MarginalUsPerPkt, 0)
	near(t, "µs/fwd pkt", r.ServerUsPerPkt, 200000.0/3500)
}

func TestMeasureWithoutServerLeavesCPUEmpty(t *testing.T) {
	a, b, idle := windowPair()
	r := rowResult{Subs: 2}
	r.measure(a, b, idle, false, true)
	near(t, "forwarded pkt/s", r.FwdPPS, 350)
	if r.ServerUsPerPkt != 0 || r.MarginalUsPerPkt != 0 || r.ServerCPUPct != 0 || r.IdleCPUPct != 0 || r.OtherCPUPct != 0 {
		t.Errorf("no server pid, yet CPU figures: %+v", r)
	}
}

func TestMeasureNothingReceived(t *testing.T) {
	a, b, idle := windowPair()
	b.recv, b.perSub, b.recvVideo, b.recvAudio = a.recv, []uint64{500, 500}, a.recvVideo, a.recvAudio
	r := rowResult{Subs: 2}
	r.measure(a, b, idle, true, true)
	// No packet: no per-packet cost at all (not +Inf), every subscriber starved.
	if r.ServerUsPerPkt != 0 || r.MarginalUsPerPkt != 0 {
		t.Errorf("µs/pkt %v, marginal %v with no packet forwarded", r.ServerUsPerPkt, r.MarginalUsPerPkt)
	}
	if r.StarvedSubs != 2 || r.DeliveryPct != 0 {
		t.Errorf("starved %d, delivery %v", r.StarvedSubs, r.DeliveryPct)
	}
	near(t, "server CPU %", r.ServerCPUPct, 2)
}
