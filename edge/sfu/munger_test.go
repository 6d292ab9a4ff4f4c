package sfu

import (
	"math/rand/v2"
	"testing"
)

type step struct {
	name    string
	seq     uint16
	ts      uint32
	arrival int64
	switchB bool // call Switch before this packet
	want    MungeResult
	wantSeq uint16
	wantTS  uint32
}

func runSteps(t *testing.T, steps []step) {
	t.Helper()
	var m Munger
	for i, s := range steps {
		if s.switchB {
			m.Switch()
		}
		out, res := m.Update(MungeIn{Seq: s.seq, TS: s.ts, Arrival: s.arrival, ClockRate: 90000})
		if res != s.want {
			t.Fatalf("step %d (%s): result %s, want %s", i, s.name, res, s.want)
		}
		if res.Forwarded() && (out.Seq != s.wantSeq || out.TS != s.wantTS) {
			t.Fatalf("step %d (%s): out seq=%d ts=%d, want seq=%d ts=%d", i, s.name, out.Seq, out.TS, s.wantSeq, s.wantTS)
		}
	}
}

func TestMunger(t *testing.T) {
	const ms = int64(1e6)
	tests := []struct {
		name  string
		steps []step
	}{
		{"contiguous keeps numbering", []step{
			{"first", 100, 1000, 0, false, Contiguous, 100, 1000},
			{"next", 101, 4000, 33 * ms, false, Contiguous, 101, 4000},
		}},
		{"sequence wrap", []step{
			{"", 65534, 10, 0, false, Contiguous, 65534, 10},
			{"", 65535, 20, 0, false, Contiguous, 65535, 20},
			{"wraps", 0, 30, 0, false, Contiguous, 0, 30},
			{"", 1, 40, 0, false, Contiguous, 1, 40},
			{"late from before wrap", 65535, 20, 0, false, Duplicate, 0, 0},
		}},
		{"timestamp wrap", []step{
			{"", 7, 0xffffff00, 0, false, Contiguous, 7, 0xffffff00},
			{"", 8, 0x00000100, 0, false, Contiguous, 8, 0x00000100},
		}},
		{"gap keeps the hole for NACK", []step{
			{"", 10, 0, 0, false, Contiguous, 10, 0},
			{"two lost", 13, 9000, 0, false, Gap, 13, 9000},
			{"retransmission fills it", 11, 3000, 0, false, OutOfOrder, 11, 3000},
			{"", 12, 6000, 0, false, OutOfOrder, 12, 6000},
			{"", 14, 12000, 0, false, Contiguous, 14, 12000},
		}},
		{"duplicate dropped", []step{
			{"", 10, 0, 0, false, Contiguous, 10, 0},
			{"", 11, 0, 0, false, Contiguous, 11, 0},
			{"again", 11, 0, 0, false, Duplicate, 0, 0},
			{"older again", 10, 0, 0, false, Duplicate, 0, 0},
		}},
		{"out of order", []step{
			{"", 20, 0, 0, false, Contiguous, 20, 0},
			{"", 22, 200, 0, false, Gap, 22, 200},
			{"", 21, 100, 0, false, OutOfOrder, 21, 100},
			{"before the stream started", 19, 0, 0, false, TooOld, 0, 0},
		}},
		{"too old beyond the window", []step{
			{"", 1000, 0, 0, false, Contiguous, 1000, 0},
			{"", 1400, 0, 0, false, Gap, 1400, 0},
			{"", 1100, 0, 0, false, TooOld, 0, 0},
		}},
		{"layer switch continues seq and ts", []step{
			{"", 500, 90000, 0, false, Contiguous, 500, 90000},
			{"", 501, 93000, 33 * ms, false, Contiguous, 501, 93000},
			// New source, unrelated numbering, 33 ms later.
			{"switch", 40000, 7, 66 * ms, true, Switched, 502, 93000 + 2970},
			{"", 40001, 3007, 99 * ms, false, Contiguous, 503, 93000 + 2970 + 3000},
			{"late packet of the new source before its keyframe", 39999, 0, 99 * ms, false, TooOld, 0, 0},
			{"back to first layer", 502, 96000, 132 * ms, true, Switched, 504, 93000 + 2970 + 3000 + 2970},
		}},
		{"switch across a wrap", []step{
			{"", 65535, 0xfffffff0, 0, false, Contiguous, 65535, 0xfffffff0},
			{"switch", 3, 5, 0, true, Switched, 0, 0xfffffff1},
			{"", 4, 3005, 0, false, Contiguous, 1, 2985},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runSteps(t, tt.steps) })
	}
}

func TestMungerSeed(t *testing.T) {
	var a Munger
	a.Update(MungeIn{Seq: 10, TS: 100})
	a.Update(MungeIn{Seq: 11, TS: 200, Arrival: 1e6})
	var b Munger
	b.Seed(a.State())
	out, res := b.Update(MungeIn{Seq: 9000, TS: 5, Arrival: 2e6, ClockRate: 90000})
	if res != Switched || out.Seq != 12 || out.TS != 290 {
		t.Fatalf("seeded: %s %+v", res, out)
	}
}

// FuzzMunger feeds a stream with random loss, duplication and reordering
// (around a random start, across wraps) and checks the output: every
// forwarded packet keeps its distance to the first one (gaps only where the
// input lost packets), nothing is forwarded twice.
func FuzzMunger(f *testing.F) {
	f.Add(uint64(1), uint16(65500), uint16(300), uint8(10), uint8(10), uint8(20))
	f.Add(uint64(7), uint16(0), uint16(1000), uint8(0), uint8(50), uint8(3))
	f.Fuzz(func(t *testing.T, seed uint64, start, n uint16, lossPct, dupPct, reorder uint8) {
		rng := rand.New(rand.NewPCG(seed, 1))
		var in []uint16
		for i := 0; i < int(n%2000); i++ {
			if rng.IntN(100) < int(lossPct%100) {
				continue
			}
			s := start + uint16(i)
			in = append(in, s)
			if rng.IntN(100) < int(dupPct%100) {
				in = append(in, s)
			}
		}
		// Local reordering within a window.
		w := int(reorder%64) + 1
		for i := range in {
			j := i + rng.IntN(w)
			if j < len(in) {
				in[i], in[j] = in[j], in[i]
			}
		}
		var m Munger
		forwarded := map[uint16]bool{}
		var firstIn, firstOut uint16
		started := false
		for _, s := range in {
			out, res := m.Update(MungeIn{Seq: s, TS: uint32(s) * 3000, ClockRate: 90000})
			if !res.Forwarded() {
				continue
			}
			if !started {
				started, firstIn, firstOut = true, s, out.Seq
			}
			if out.Seq-firstOut != s-firstIn {
				t.Fatalf("seq %d → %d: distance changed (first %d → %d)", s, out.Seq, firstIn, firstOut)
			}
			if out.TS != uint32(s)*3000 {
				t.Fatalf("ts of %d rewritten to %d without a switch", s, out.TS)
			}
			if forwarded[out.Seq] {
				t.Fatalf("seq %d forwarded twice", out.Seq)
			}
			forwarded[out.Seq] = true
		}
	})
}

func TestKeyframeLimiter(t *testing.T) {
	var k keyframeLimiter
	k.interval = 1e9
	base := monoEpoch
	if !k.Request(base) {
		t.Fatal("first request must go")
	}
	if k.Request(base.Add(3e8)) || k.Request(base.Add(6e8)) {
		t.Fatal("requests inside the interval must be deferred")
	}
	if k.Due(base.Add(9e8)) {
		t.Fatal("deferred request sent early")
	}
	if !k.Due(base.Add(1e9)) {
		t.Fatal("deferred request not sent at the end of the interval")
	}
	if k.Due(base.Add(3e9)) {
		t.Fatal("coalesced requests must produce one PLI")
	}

	// Answered: a keyframe arrived since the last PLI (sent at base+1s), so
	// the next request may go after a quarter of the interval, not before.
	k.Answered()
	if k.Request(base.Add(1e9 + 2e8)) {
		t.Fatal("an answered request must still wait a quarter of the interval")
	}
	if !k.Due(base.Add(1e9 + 25e7)) {
		t.Fatal("a deferred request after an answered PLI must go after a quarter of the interval")
	}
	// That PLI (at base+1.25s) is not answered yet: the full interval again.
	if k.Request(base.Add(1e9 + 25e7 + 5e8)) {
		t.Fatal("an unanswered PLI must hold the next for the whole interval")
	}
	k.Answered()
	if !k.Due(base.Add(1e9 + 25e7 + 6e8)) {
		t.Fatal("the deferred request must go once the PLI is answered")
	}
}

func TestSpeakerDetector(t *testing.T) {
	var d speakerDetector
	list, changed := d.Update(map[string]levelSample{"a": {sum: 100 * 10, count: 10}, "b": {sum: 90 * 10, count: 10}, "c": {sum: 0, count: 10}})
	if !changed || len(list) != 2 || list[0] != "a" || list[1] != "b" {
		t.Fatalf("got %v %v", list, changed)
	}
	if _, changed = d.Update(map[string]levelSample{"a": {sum: 100 * 10, count: 10}, "b": {sum: 90 * 10, count: 10}}); changed {
		t.Fatal("same speakers reported as a change")
	}
	for i := 0; i < 5; i++ {
		list, _ = d.Update(map[string]levelSample{"b": {sum: 100 * 10, count: 10}})
	}
	if len(list) != 1 || list[0] != "b" {
		t.Fatalf("a stopped talking, got %v", list)
	}
}

func TestCodecHelpers(t *testing.T) {
	key := []byte{0x10, 0x10, 0, 0, 0x9d, 0x01, 0x2a, 0x00, 0x05, 0xd0, 0x02}
	if !isVP8Keyframe(key) {
		t.Fatal("key frame not detected")
	}
	if w, h, ok := vp8Size(key); !ok || w != 1280 || h != 720 {
		t.Fatalf("size %dx%d %v", w, h, ok)
	}
	if isVP8Keyframe([]byte{0x10, 0x11, 0, 0}) || isVP8Keyframe([]byte{0x00, 0x10}) {
		t.Fatal("delta frame or continuation detected as key")
	}
	// X with picture id (2 bytes), key frame.
	if !isVP8Keyframe([]byte{0x90, 0x80, 0x81, 0x02, 0x10, 0, 0}) {
		t.Fatal("key frame with extension not detected")
	}
	if !isH264Keyframe([]byte{0x65}) || !isH264Keyframe([]byte{0x78, 0, 2, 0x67, 0}) || !isH264Keyframe([]byte{0x7c, 0x85}) || isH264Keyframe([]byte{0x41}) {
		t.Fatal("h264 detection")
	}
}

func TestQualityScore(t *testing.T) {
	if s := qualityScore(0, 0.05, 0.01); s != 5 {
		t.Fatalf("clean link %v", s)
	}
	if s := qualityScore(0.1, 0.05, 0); s > 2.5 {
		t.Fatalf("10%% loss scored %v", s)
	}
}
