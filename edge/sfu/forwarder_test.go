package sfu

import (
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	wire "github.com/meridian-video/meridian/shared/signal"
)

// captureWriter records the last header written (a TrackLocalWriter).
type captureWriter struct {
	n    int
	last rtp.Header
	pl   []byte
}

func (w *captureWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	w.n++
	w.last = *h
	w.pl = payload
	return len(payload), nil
}
func (w *captureWriter) Write(b []byte) (int, error) { return len(b), nil }

func testTrack(simulcast bool) *PublishedTrack {
	t := &PublishedTrack{
		info:      wire.TrackInfo{TrackID: "v", ParticipantID: "p", Kind: "video", Simulcast: simulcast},
		kind:      webrtc.RTPCodecTypeVideo,
		codec:     webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}},
		ck:        codecVP8,
		simulcast: simulcast,
	}
	empty := []*Forwarder{}
	t.fwds.Store(&empty)
	return t
}

func testForwarder(t *PublishedTrack, w webrtc.TrackLocalWriter, ssrc uint32) *Forwarder {
	f := &Forwarder{track: t, dt: &DownTrack{id: "v", streamID: "p", kind: t.kind, mime: webrtc.MimeTypeVP8}}
	f.current.Store(noLayer)
	f.target.Store(0)
	f.pinned.Store(autoPick)
	f.dt.b.Store(&binding{ssrc: ssrc, pt: 96, w: w})
	t.addForwarder(f)
	return f
}

var (
	keyPayload   = []byte{0x10, 0x10, 0, 0, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00, 1, 2, 3}
	deltaPayload = []byte{0x10, 0x11, 0, 0, 4, 5, 6}
)

func TestForwarderSwitchesOnlyAtKeyframe(t *testing.T) {
	tr := testTrack(true)
	w := &captureWriter{}
	f := testForwarder(tr, w, 4242)
	f.target.Store(LayerQ)
	send := func(layer int, seq uint16, key bool) {
		pl := deltaPayload
		if key {
			pl = keyPayload
		}
		p := rtp.Packet{Header: rtp.Header{SequenceNumber: seq, Timestamp: uint32(seq) * 3000, SSRC: uint32(100 + layer)}, Payload: pl}
		tr.fanOut(layer, &p, key, int64(seq)*33e6)
	}
	send(LayerQ, 10, false) // no keyframe yet: dropped
	if w.n != 0 {
		t.Fatal("forwarded before a keyframe")
	}
	send(LayerQ, 11, true)
	send(LayerF, 900, true) // not the target: dropped
	send(LayerQ, 12, false)
	if w.n != 2 || w.last.SSRC != 4242 || w.last.PayloadType != 96 {
		t.Fatalf("n=%d last=%+v", w.n, w.last)
	}
	first := w.last.SequenceNumber
	f.Pin("f")
	send(LayerF, 901, false) // target, but not a keyframe
	send(LayerQ, 13, false)  // current layer still flows
	if w.n != 3 || w.last.SequenceNumber != first+1 {
		t.Fatalf("before the switch: n=%d seq=%d", w.n, w.last.SequenceNumber)
	}
	send(LayerF, 902, true)
	if w.n != 4 || w.last.SequenceNumber != first+2 || f.current.Load() != LayerF {
		t.Fatalf("switch: n=%d seq=%d current=%d", w.n, w.last.SequenceNumber, f.current.Load())
	}
	send(LayerQ, 14, false) // old layer no longer forwarded
	send(LayerF, 903, false)
	if w.n != 5 || w.last.SequenceNumber != first+3 {
		t.Fatalf("after the switch: n=%d seq=%d", w.n, w.last.SequenceNumber)
	}
}

func TestForwardPathDoesNotAllocate(t *testing.T) {
	tr := testTrack(false)
	for i := 0; i < 4; i++ {
		testForwarder(tr, &captureWriter{}, uint32(i+1))
	}
	p := rtp.Packet{Header: rtp.Header{SequenceNumber: 1, Timestamp: 1}, Payload: keyPayload}
	tr.fanOut(0, &p, true, 0)
	seq := uint16(2)
	allocs := testing.AllocsPerRun(1000, func() {
		p.SequenceNumber = seq
		p.Timestamp += 3000
		seq++
		tr.fanOut(0, &p, false, int64(seq)*33e6)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per forwarded packet", allocs)
	}
}

// BenchmarkForward measures one incoming packet fanned out to 10
// subscribers (cost per packet in; allocs/op must stay 0).
func BenchmarkForward(b *testing.B) {
	tr := testTrack(false)
	for i := 0; i < 10; i++ {
		testForwarder(tr, &captureWriter{}, uint32(i+1))
	}
	p := rtp.Packet{Header: rtp.Header{SequenceNumber: 1, Timestamp: 1}, Payload: make([]byte, 1100)}
	copy(p.Payload, keyPayload)
	tr.fanOut(0, &p, true, 0)
	copy(p.Payload, deltaPayload)
	b.ReportAllocs()
	b.SetBytes(int64(len(p.Payload)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.SequenceNumber++
		p.Timestamp += 3000
		tr.fanOut(0, &p, false, int64(i)*1e6)
	}
}

// TestForwardSkipReasonsAreCounted: packets a subscriber does not get are
// counted by reason, so a frozen video is visible in /metrics.
func TestForwardSkipReasonsAreCounted(t *testing.T) {
	tr := testTrack(false)
	w := &captureWriter{}
	f := testForwarder(tr, w, 7)
	pkt := &rtp.Packet{Header: rtp.Header{SequenceNumber: 10, Timestamp: 1000}, Payload: []byte{0x90, 0, 0, 0}}
	f.forward(0, pkt, false, 1) // no keyframe yet
	f.forward(0, pkt, false, 2)
	if got := f.stats.skipNoKeyframe.Load(); got != 2 || w.n != 0 {
		t.Fatalf("waiting-keyframe skips %d, written %d", got, w.n)
	}
	f.forward(0, pkt, true, 3) // keyframe: forwarded
	f.forward(0, pkt, true, 4) // same sequence number again: duplicate
	if w.n != 1 || f.stats.skipMunger.Load() != 1 {
		t.Fatalf("written %d, duplicate skips %d", w.n, f.stats.skipMunger.Load())
	}
}

// TestRetransmitAcrossASwitch: a NACK names the subscriber's sequence
// numbers; the forwarder finds which layer each came from (before or after
// a simulcast switch), takes the packet from that layer's buffer and sends
// it with the sequence number and timestamp the subscriber knows.
func TestRetransmitAcrossASwitch(t *testing.T) {
	tr := testTrack(true)
	for i := range tr.layers {
		tr.layers[i] = &layer{idx: i, retx: &retxBuffer{}}
	}
	w := &recordWriter{}
	f := testForwarder(tr, w, 99)
	f.target.Store(LayerQ)
	send := func(layer int, seq uint16, key bool) {
		pl := append([]byte(nil), deltaPayload...)
		if key {
			pl = append([]byte(nil), keyPayload...)
		}
		pl = append(pl, byte(layer), byte(seq>>8), byte(seq)) // identifies the source packet
		p := rtp.Packet{Header: rtp.Header{SequenceNumber: seq, Timestamp: uint32(seq) * 3000, Marker: seq%2 == 0}, Payload: pl}
		tr.layers[layer].retx.add(&p)
		tr.fanOut(layer, &p, key, int64(seq)*33e6)
	}
	send(LayerQ, 100, true)
	for s := uint16(101); s < 110; s++ {
		send(LayerQ, s, false)
	}
	f.target.Store(LayerF) // as Pin("f") does, without a publisher to ask for a key frame
	send(LayerF, 5000, true)
	for s := uint16(5001); s < 5010; s++ {
		send(LayerF, s, false)
	}
	sent := append([]rtp.Packet(nil), w.pkts...) // what the subscriber got, in order
	if len(sent) != 20 {
		t.Fatalf("%d packets forwarded", len(sent))
	}
	// NACK the 4th packet and, by bitmask, the 11th and 12th (the first two
	// after the switch): pid + 7, pid + 8.
	w.pkts = nil
	f.retransmit(sent[3].SequenceNumber, 1<<6|1<<7)
	if len(w.pkts) != 3 {
		t.Fatalf("%d packets retransmitted, want 3", len(w.pkts))
	}
	for i, idx := range []int{3, 10, 11} {
		got, want := w.pkts[i], sent[idx]
		if got.SequenceNumber != want.SequenceNumber || got.Timestamp != want.Timestamp || got.SSRC != 99 ||
			got.Marker != want.Marker || string(got.Payload) != string(want.Payload) {
			t.Errorf("retransmission %d: seq %d ts %d marker %v payload %x; first sent as seq %d ts %d marker %v payload %x",
				i, got.SequenceNumber, got.Timestamp, got.Marker, got.Payload, want.SequenceNumber, want.Timestamp, want.Marker, want.Payload)
		}
	}
	// Beyond what was sent, or never sent: nothing.
	w.pkts = nil
	f.retransmit(sent[19].SequenceNumber+1, 0)
	f.retransmit(sent[0].SequenceNumber-1, 0)
	if len(w.pkts) != 0 {
		t.Fatalf("%d packets retransmitted for sequence numbers never sent", len(w.pkts))
	}
}

// recordWriter keeps copies of every packet written.
type recordWriter struct{ pkts []rtp.Packet }

func (w *recordWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	w.pkts = append(w.pkts, rtp.Packet{Header: *h, Payload: append([]byte(nil), payload...)})
	return len(payload), nil
}
func (w *recordWriter) Write(b []byte) (int, error) { return len(b), nil }

// TestForwardWithTransportCCDoesNotAllocate: stamping transport-wide
// sequence numbers and recording send times keeps the path allocation-free.
func TestForwardWithTransportCCDoesNotAllocate(t *testing.T) {
	tr := testTrack(false)
	sub := &Subscriber{twcc: newTWCCSender(1e6, 1e5, 1e7)}
	sub.connected.Store(true)
	for i := 0; i < 4; i++ {
		f := testForwarder(tr, &captureWriter{}, uint32(i+1))
		f.sub = sub
		f.dt.b.Store(&binding{ssrc: uint32(i + 1), pt: 96, w: &captureWriter{}, twccExt: 3})
	}
	p := rtp.Packet{Header: rtp.Header{SequenceNumber: 1, Timestamp: 1}, Payload: keyPayload}
	tr.fanOut(0, &p, true, 0)
	seq := uint16(2)
	allocs := testing.AllocsPerRun(1000, func() {
		p.SequenceNumber = seq
		p.Timestamp += 3000
		seq++
		tr.fanOut(0, &p, false, int64(seq)*33e6)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per forwarded packet", allocs)
	}
	if n := sub.twcc.next.Load(); n < 4000 {
		t.Fatalf("%d transport-wide sequence numbers used for 4 × 1001 packets", n)
	}
}
