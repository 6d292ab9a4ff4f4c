package sfu

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtcp"
)

// recordingHandler collects what walkRTCP hands out.
type recordingHandler struct {
	keys    []uint32
	nacks   [][3]uint32 // ssrc, pid, blp
	reports []reportBlock
	twcc    [][]byte
}

func (r *recordingHandler) keyframeRequest(ssrc uint32) { r.keys = append(r.keys, ssrc) }
func (r *recordingHandler) nack(ssrc uint32, pid, blp uint16) {
	r.nacks = append(r.nacks, [3]uint32{ssrc, uint32(pid), uint32(blp)})
}
func (r *recordingHandler) report(b reportBlock) { r.reports = append(r.reports, b) }
func (r *recordingHandler) transportCC(ssrc uint32, fci []byte) {
	r.twcc = append(r.twcc, append([]byte(nil), fci...))
}

// TestWalkRTCPMatchesPion: a compound packet marshalled by pion's rtcp
// package decodes to the same values it was built from.
func TestWalkRTCPMatchesPion(t *testing.T) {
	rr := &rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{
		{SSRC: 10, FractionLost: 12, TotalLost: 70000, LastSequenceNumber: 123456, Jitter: 99, LastSenderReport: 0xabcdef01, Delay: 655},
		{SSRC: 11, FractionLost: 0, TotalLost: 0, LastSequenceNumber: 7, Jitter: 1, LastSenderReport: 2, Delay: 3},
	}}
	sr := &rtcp.SenderReport{SSRC: 2, NTPTime: 1, RTPTime: 2, PacketCount: 3, OctetCount: 4, Reports: []rtcp.ReceptionReport{
		{SSRC: 12, FractionLost: 1, TotalLost: 2, LastSequenceNumber: 3, Jitter: 4, LastSenderReport: 5, Delay: 6},
	}}
	pkts := []rtcp.Packet{
		rr,
		&rtcp.PictureLossIndication{SenderSSRC: 1, MediaSSRC: 10},
		&rtcp.TransportLayerNack{SenderSSRC: 1, MediaSSRC: 10, Nacks: []rtcp.NackPair{{PacketID: 65530, LostPackets: 0x8001}, {PacketID: 3, LostPackets: 0}}},
		&rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{Source: 1, Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "x"}}}}},
		&rtcp.FullIntraRequest{SenderSSRC: 1, MediaSSRC: 0, FIR: []rtcp.FIREntry{{SSRC: 20, SequenceNumber: 1}, {SSRC: 21, SequenceNumber: 2}}},
		&rtcp.ReceiverEstimatedMaximumBitrate{SenderSSRC: 1, Bitrate: 1e6, SSRCs: []uint32{10}},
		sr,
		&rtcp.Goodbye{Sources: []uint32{1}},
	}
	raw, err := rtcp.Marshal(pkts)
	if err != nil {
		t.Fatal(err)
	}
	var h recordingHandler
	if err := walkRTCP(raw, &h); err != nil {
		t.Fatal(err)
	}
	wantReports := []reportBlock{}
	for _, r := range append(append([]rtcp.ReceptionReport{}, rr.Reports...), sr.Reports...) {
		wantReports = append(wantReports, reportBlock{ssrc: r.SSRC, fractionLost: r.FractionLost, totalLost: r.TotalLost,
			highestSeq: r.LastSequenceNumber, jitter: r.Jitter, lsr: r.LastSenderReport, dlsr: r.Delay})
	}
	if !reflect.DeepEqual(h.reports, wantReports) {
		t.Errorf("reports %+v\nwant %+v", h.reports, wantReports)
	}
	if want := []uint32{10, 20, 21}; !reflect.DeepEqual(h.keys, want) {
		t.Errorf("keyframe requests %v, want %v", h.keys, want)
	}
	if want := [][3]uint32{{10, 65530, 0x8001}, {10, 3, 0}}; !reflect.DeepEqual(h.nacks, want) {
		t.Errorf("nacks %v, want %v", h.nacks, want)
	}
	if len(h.twcc) != 0 {
		t.Errorf("transport-cc seen in a packet without any")
	}
	// Truncated input: an error, never a panic, and nothing past the cut.
	for cut := 1; cut < len(raw); cut++ {
		_ = walkRTCP(raw[:cut], &recordingHandler{})
	}
}

// TestWalkTWCCMatchesPion: feedback built by pion's transport-cc recorder
// (the encoder pion clients use) decodes to the packets recorded, with
// their arrival times to the 250 µs the format keeps.
func TestWalkTWCCMatchesPion(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 50; round++ {
		rec := twcc.NewRecorder(5)
		type pk struct {
			arrival int64
			got     bool
		}
		want := map[uint16]pk{}
		seq := uint16(rng.IntN(65536))
		at := int64(rng.IntN(1e9))
		n := 1 + rng.IntN(300)
		first := seq
		for i := 0; i < n; i++ {
			at += int64(rng.IntN(20000)) // up to 20 ms apart: small and large deltas
			if rng.IntN(10) == 0 && i > 0 && i < n-1 {
				want[seq] = pk{} // lost: never recorded
			} else {
				rec.Record(7, seq, at)
				want[seq] = pk{arrival: at, got: true}
			}
			seq++
		}
		fbs := rec.BuildFeedbackPacket()
		seen := map[uint16]pk{}
		for _, fb := range fbs {
			cc, ok := fb.(*rtcp.TransportLayerCC)
			if !ok {
				continue
			}
			raw, err := cc.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			var h recordingHandler
			if err := walkRTCP(raw, &h); err != nil || len(h.twcc) != 1 {
				t.Fatalf("round %d: walk %v, %d feedback messages", round, err, len(h.twcc))
			}
			if err := walkTWCC(h.twcc[0], func(s uint16, received bool, arrivalUs int64) {
				seen[s] = pk{arrival: arrivalUs, got: received}
			}); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		var base int64
		for s := first; s != seq; s++ {
			w, g := want[s], seen[s]
			if g.got != w.got {
				t.Fatalf("round %d: packet %d received %v, want %v", round, s, g.got, w.got)
			}
			if !w.got {
				continue
			}
			if base == 0 {
				base = w.arrival - g.arrival // the reference time's offset
			}
			if d := w.arrival - g.arrival - base; d > 250 || d < -250 {
				t.Fatalf("round %d: packet %d arrival %d, want %d (±250 µs)", round, s, g.arrival+base, w.arrival)
			}
		}
	}
}

func FuzzWalkRTCP(f *testing.F) {
	raw, _ := rtcp.Marshal([]rtcp.Packet{
		&rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{SSRC: 2}}},
		&rtcp.TransportLayerNack{MediaSSRC: 2, Nacks: []rtcp.NackPair{{PacketID: 1, LostPackets: 3}}},
	})
	f.Add(raw)
	rec := twcc.NewRecorder(1)
	for i := uint16(0); i < 30; i++ {
		if i%4 != 1 {
			rec.Record(2, i, int64(i)*3000)
		}
	}
	for _, p := range rec.BuildFeedbackPacket() {
		b, _ := p.Marshal()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var h recordingHandler
		_ = walkRTCP(b, &h)
		for _, fci := range h.twcc {
			_ = walkTWCC(fci, func(uint16, bool, int64) {})
		}
	})
}
