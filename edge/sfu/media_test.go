package sfu

import (
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-video/meridian/shared/metrictest"
)

// seqDiff is a − b in 16-bit sequence space.
func seqDiff(a, b uint16) int { return int(int16(a - b)) }

// TestSubscriberNACKRetransmitsWithRightSequenceNumbers: the subscriber's
// socket drops every ninth video packet the first time it arrives (in
// userspace, before pion sees it); its NACK generator asks again and the
// edge must resend each one with the sequence number the subscriber knows
// it by, carrying the publisher's packet for that number. The publisher
// sends simulcast and the subscriber is moved to another layer half way,
// so the output numbering differs from the publisher's by a different
// offset on each side of the switch, and retransmissions must come from
// the right layer's buffer.
func TestSubscriberNACKRetransmitsWithRightSequenceNumbers(t *testing.T) {
	s := newTestSFU(t, testConfig())
	startPublisher(t, s, "room", "alice", pubOpts{simulcast: true, fps: 30, pktsPerFrame: 4, size: 600, keyEvery: 60})

	var mu sync.Mutex
	dropped := map[uint16]bool{}
	var drops atomic.Int64
	net := newDropNet(t, func(h *rtp.Header) bool {
		if h.PayloadType != 96 || h.SequenceNumber%9 != 4 { // VP8 as the edge offers it
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		if dropped[h.SequenceNumber] {
			return false // the retransmission goes through
		}
		dropped[h.SequenceNumber] = true
		drops.Add(1)
		return true
	})
	opts := browserLike
	opts.net = net
	bob := startSubscriber(t, s, "room", "bob", opts)
	waitFor := func(n int) {
		t.Helper()
		eventually(t, 30*time.Second, func() string {
			if got := len(bob.received("video")); got < n {
				return fmt.Sprintf("bob has %d video packets, %d dropped", got, drops.Load())
			}
			return ""
		})
	}
	waitFor(200)
	first := bob.received("video")
	moved := LayerH
	if first[len(first)-1].layer == LayerH {
		moved = LayerQ
	}
	if err := bob.part.SetLayer("alice/video", []string{"q", "h", "f"}[moved]); err != nil {
		t.Fatal(err)
	}
	waitFor(len(first) + 300)

	pkts := bob.received("video")
	// The offset between output and publisher numbering holds for a stretch
	// of one layer: the forwarder renumbers at each switch, and automatic
	// selection may visit a layer twice before the pin. Stretches are runs
	// of one layer in output order; a retransmission must carry the offset
	// of the stretch its output number falls in.
	byOut := map[uint16]recvPacket{}
	for _, p := range pkts {
		if !p.tagged {
			t.Fatalf("packet %d carries no publisher tag", p.seq)
		}
		if _, ok := byOut[p.seq]; !ok {
			byOut[p.seq] = p
		}
	}
	order := make([]uint16, 0, len(byOut))
	for seq := range byOut {
		order = append(order, seq)
	}
	sort.Slice(order, func(i, j int) bool { return seqDiff(order[i], order[j]) < 0 })
	offsetAt := map[uint16]uint16{} // output number -> its stretch's offset
	layerAt := map[uint16]int{}
	var stretches []string
	for i, seq := range order {
		p := byOut[seq]
		if i == 0 || p.layer != byOut[order[i-1]].layer {
			stretches = append(stretches, fmt.Sprintf("layer %d from %d (+%d)", p.layer, seq, p.seq-p.pubSeq))
			offsetAt[seq] = p.seq - p.pubSeq
		} else {
			offsetAt[seq] = offsetAt[order[i-1]]
		}
		layerAt[seq] = p.layer
	}
	offset := stretches
	if len(stretches) < 2 || byOut[order[len(order)-1]].layer != moved {
		t.Fatalf("stretches forwarded %v: want the pinned layer %d last, after another", stretches, moved)
	}
	got := map[uint16]bool{}
	highest := pkts[0].seq
	late := 0
	for _, p := range pkts {
		if p.layer != layerAt[p.seq] || p.seq-p.pubSeq != offsetAt[p.seq] {
			t.Fatalf("packet %d carries publisher packet %d of layer %d: its stretch (layer %d) maps %d to %d",
				p.seq, p.pubSeq, p.layer, layerAt[p.seq], p.pubSeq+offsetAt[p.seq], p.pubSeq)
		}
		if got[p.seq] {
			continue
		}
		got[p.seq] = true
		if seqDiff(p.seq, highest) > 0 {
			highest = p.seq
		} else {
			late++
		}
	}
	mu.Lock()
	defer mu.Unlock()
	var missing []uint16
	checked := 0
	for seq := range dropped {
		// Only drops after bob's first packet (he cannot know of earlier
		// ones) and not among the newest (they may still be in recovery).
		if seqDiff(seq, pkts[0].seq) <= 0 || seqDiff(highest, seq) < 40 {
			continue
		}
		checked++
		if !got[seq] {
			missing = append(missing, seq)
		}
	}
	f := bob.part.Forwarder("alice", "video")
	t.Logf("%d packets (stretches %v), %d dropped on arrival, %d checked, %d arrived late; edge: %d NACKed, %d retransmitted",
		len(pkts), offset, drops.Load(), checked, late, f.stats.nacks.Load(), f.stats.retransmits.Load())
	if checked < 40 {
		t.Fatalf("only %d dropped packets to check", checked)
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d dropped packets never retransmitted: %v", len(missing), checked, missing)
	}
	if f.stats.nacks.Load() == 0 {
		t.Fatal("the edge counted no NACK")
	}
}

// TestSimulcastSwitchIsSeamless: pinning layers one after the other asks the
// publisher for a key frame of the new layer, switches on it, and the
// subscriber sees one SSRC whose sequence numbers continue by +1 and whose
// timestamps never go back across every switch.
func TestSimulcastSwitchIsSeamless(t *testing.T) {
	s := newTestSFU(t, testConfig())
	// Key frames only when asked: every switch depends on a PLI.
	pub := startPublisher(t, s, "room", "alice", pubOpts{simulcast: true, fps: 30, pktsPerFrame: 2, size: 300})
	bob := startSubscriber(t, s, "room", "bob", browserLike)
	eventually(t, 20*time.Second, func() string {
		if n := len(bob.received("video")); n < 20 {
			return fmt.Sprintf("bob has %d video packets", n)
		}
		return ""
	})
	f := bob.part.Forwarder("alice", "video")
	for _, layer := range []string{"q", "f", "h", "q"} {
		idx := LayerIndex(layer)
		plis := pub.plis[idx].Load()
		from := len(bob.received("video"))
		if err := bob.part.SetLayer("alice/video", layer); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, func() string {
			pk := bob.received("video")[from:]
			n := 0
			for _, p := range pk {
				if p.layer == idx {
					n++
				}
			}
			if n < 10 || pk[len(pk)-1].layer != idx {
				return fmt.Sprintf("%d packets of layer %s since the pin", n, layer)
			}
			return ""
		})
		if pub.plis[idx].Load() == plis && f.current.Load() == int32(idx) {
			// A pin to the layer already forwarded needs no key frame.
			continue
		}
		if pub.plis[idx].Load() == plis {
			t.Fatalf("switch to %s: no key frame request reached the publisher", layer)
		}
	}
	pkts := bob.received("video")
	switches := 0
	for i, p := range pkts {
		if p.ssrc != pkts[0].ssrc {
			t.Fatalf("packet %d: SSRC %d, then %d; a forwarded track keeps one", i, pkts[0].ssrc, p.ssrc)
		}
		if i == 0 {
			if !p.key {
				t.Fatal("the first packet is not a key frame")
			}
			continue
		}
		prev := pkts[i-1]
		if p.seq != prev.seq+1 {
			t.Fatalf("packet %d: sequence %d after %d (layer %d after %d)", i, p.seq, prev.seq, p.layer, prev.layer)
		}
		if int32(p.ts-prev.ts) < 0 {
			t.Fatalf("packet %d: timestamp %d after %d", i, p.ts, prev.ts)
		}
		if p.layer != prev.layer {
			switches++
			if !p.key {
				t.Fatalf("packet %d: switched from layer %d to %d on a delta frame", i, prev.layer, p.layer)
			}
			if p.ts == prev.ts {
				t.Fatalf("packet %d: the new layer's frame has the old frame's timestamp", i)
			}
		}
	}
	if switches < 3 {
		t.Fatalf("%d layer switches seen", switches)
	}
}

// TestKeyframeRequestedOnBind: a publisher that sends key frames only when
// asked; subscribers joining later each get a key frame first. The edge
// counts the requests it sent (meridian_sfu_keyframe_requests_total), as
// many as reached the publisher.
func TestKeyframeRequestedOnBind(t *testing.T) {
	s := newTestSFU(t, testConfig())
	pub := startPublisher(t, s, "room", "alice", pubOpts{fps: 30, pktsPerFrame: 2, size: 300})
	tr := pub.videoTrack(t)
	eventually(t, 10*time.Second, func() string {
		if _, pk, _, _, _, _, _ := tr.inbound(); pk < 30 {
			return fmt.Sprintf("the edge has %d packets from the publisher", pk)
		}
		return ""
	})
	for _, id := range []string{"bob", "carol"} {
		plis := pub.plis[0].Load()
		sub := startSubscriber(t, s, "room", id, browserLike)
		eventually(t, 10*time.Second, func() string {
			if n := len(sub.received("video")); n < 5 {
				return fmt.Sprintf("%s has %d video packets", id, n)
			}
			return ""
		})
		if !sub.received("video")[0].key {
			t.Fatalf("%s: the first packet is not a key frame", id)
		}
		if pub.plis[0].Load() == plis {
			t.Fatalf("%s: no key frame request reached the publisher", id)
		}
	}
	// Two requests at once: the second waits for the first's interval.
	deferred := sfuCounter(t, s, "meridian_sfu_keyframe_requests_total", "deferred")
	tr.RequestKeyframe(0)
	tr.RequestKeyframe(0)
	if d := sfuCounter(t, s, "meridian_sfu_keyframe_requests_total", "deferred"); d <= deferred {
		t.Fatalf("two keyframe requests at once: deferred count %v → %v", deferred, d)
	}
	eventually(t, 10*time.Second, func() string {
		sent, got := sfuCounter(t, s, "meridian_sfu_keyframe_requests_total", "sent"), pub.plis[0].Load()
		if sent < 2 || int64(sent) != got {
			return fmt.Sprintf("the edge counts %v keyframe requests sent; the publisher received %d", sent, got)
		}
		return ""
	})
}

// sfuCounter reads one of the SFU's metrics, by its outcome label.
func sfuCounter(t *testing.T, s *SFU, name, outcome string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(s.Collector()); err != nil {
		t.Fatal(err)
	}
	return metrictest.Value(t, reg, name, map[string]string{"outcome": outcome})
}

// TestMediaSocketsKeepPacketOrder: with the default media sockets (a UDP
// mux, loopback and every local address gathered), what a publisher sends
// in order reaches a subscriber in order. With one socket on the wildcard
// address, pion's host candidates (one per local address) shared one
// muxed connection whose readers raced, and inbound packets came out
// reordered. Neither the publisher nor the subscriber uses NACK, so no
// retransmission arrives late: a packet lost on a loaded machine is a gap
// forward, and only reordering makes a sequence number go back.
func TestMediaSocketsKeepPacketOrder(t *testing.T) {
	s := newTestSFU(t, testConfig())
	startPublisher(t, s, "room", "alice", pubOpts{fps: 30, pktsPerFrame: 8, size: 300, keyEvery: 30, noNACK: true})
	var mu sync.Mutex
	var wire []uint16
	net := newDropNet(t, func(h *rtp.Header) bool {
		if h.PayloadType == 96 {
			mu.Lock()
			wire = append(wire, h.SequenceNumber)
			mu.Unlock()
		}
		return false
	})
	opts := browserLike
	opts.nack = false
	opts.net = net
	startSubscriber(t, s, "room", "bob", opts)
	eventually(t, 30*time.Second, func() string {
		mu.Lock()
		defer mu.Unlock()
		if len(wire) < 1200 {
			return fmt.Sprintf("%d video packets reached bob's socket", len(wire))
		}
		return ""
	})
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(wire); i++ {
		if d := int16(wire[i] - wire[i-1]); d <= 0 {
			t.Fatalf("packet %d on the wire: sequence %d after %d", i, wire[i], wire[i-1])
		}
	}
}

// TestSubscribersLeaveNoGoroutinesBehind: subscribers that receive media and
// leave take every goroutine they started with them (SFU and client side).
func TestSubscribersLeaveNoGoroutinesBehind(t *testing.T) {
	s := newTestSFU(t, testConfig())
	pub := startPublisher(t, s, "room", "alice", pubOpts{fps: 30, pktsPerFrame: 2, size: 300, keyEvery: 30, audio: true})
	// The baseline counts the publisher's goroutines: connected, and its
	// first packets in (the edge starts its track readers on them).
	eventually(t, 15*time.Second, func() string {
		if st := pub.pc.ConnectionState(); st != webrtc.PeerConnectionStateConnected {
			return "publisher " + st.String()
		}
		return ""
	})
	time.Sleep(300 * time.Millisecond)
	base := runtime.NumGoroutine()
	baseStacks := goroutineStacks()
	const n = 4
	var subs []*testSubscriber
	for i := 0; i < n; i++ {
		subs = append(subs, startSubscriber(t, s, "room", fmt.Sprintf("sub-%d", i), browserLike))
	}
	for _, sub := range subs {
		eventually(t, 15*time.Second, func() string {
			if v, a := len(sub.received("video")), len(sub.received("audio")); v < 5 || a < 5 {
				return fmt.Sprintf("%d video and %d audio packets", v, a)
			}
			return ""
		})
	}
	t.Logf("goroutines per subscriber, edge and client side together: %.1f", float64(runtime.NumGoroutine()-base)/n)
	for _, sub := range subs {
		sub.close()
	}
	eventually(t, 15*time.Second, func() string {
		if g := runtime.NumGoroutine(); g > base {
			return fmt.Sprintf("%d goroutines, %d before the subscribers joined; new ones:\n%s", g, base, newStacks(baseStacks))
		}
		return ""
	})
}

func goroutineStacks() map[string]int {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	out := map[string]int{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		lines := strings.Split(g, "\n")
		if len(lines) < 2 {
			continue
		}
		// Where it waits and who started it, without arguments.
		key := funcName(lines[1])
		for _, l := range lines {
			if rest, ok := strings.CutPrefix(l, "created by "); ok {
				key += " ← " + funcName(rest)
			}
		}
		out[key]++
	}
	return out
}

// funcName cuts a stack line down to the function ("pkg.(*T).f").
func funcName(l string) string {
	if i := strings.LastIndex(l, "("); i > 0 && strings.HasSuffix(l, ")") {
		l = l[:i]
	}
	if i := strings.Index(l, " in goroutine "); i > 0 {
		l = l[:i]
	}
	return l
}

func newStacks(before map[string]int) string {
	var b strings.Builder
	for k, v := range goroutineStacks() {
		if v > before[k] {
			fmt.Fprintf(&b, "%d×\n%s\n\n", v-before[k], k)
		}
	}
	return b.String()
}
