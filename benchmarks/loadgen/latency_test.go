package main

import (
	"bytes"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// A stamp survives what a forwarder may do to a packet: another header
// (CSRCs, a header extension, padding) and a rewritten, longer VP8
// descriptor at the front of the payload.
func TestStampSurvivesHeaderAndDescriptorRewrite(t *testing.T) {
	payload := make([]byte, 200)
	vp8Packet(payload, true, true)
	at := int64(1234567890123456789)
	stampPayload(payload, at)

	// What a server might send on: its own header with an extension and
	// CSRCs, an extended VP8 descriptor (X bit, picture id) in front, padding.
	rewritten := append([]byte{0x90, 0x80, 0x12, 0x34}, payload[1:]...)
	pkt := rtp.Packet{
		Header:      rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 7, SSRC: 9, CSRC: []uint32{1, 2}, Padding: true, PaddingSize: 4},
		Payload:     rewritten,
		PaddingSize: 4,
	}
	if err := pkt.Header.SetExtension(3, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	raw, err := pkt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p := rtpPayload(raw)
	if !bytes.Equal(p, rewritten) {
		t.Fatalf("payload of the marshalled packet: %d bytes, want the %d sent", len(p), len(rewritten))
	}
	got, ok := readStamp(p)
	if !ok || got != at {
		t.Fatalf("stamp %v (found %v), want %v", got, ok, at)
	}
}

func TestUnstampedPayloadHasNoStamp(t *testing.T) {
	// A padding-only probe or a blank frame a server sends on its own.
	for _, p := range [][]byte{nil, make([]byte, stampLen-1), make([]byte, 100), bytes.Repeat([]byte{0xA5}, 100)} {
		if _, ok := readStamp(p); ok {
			t.Errorf("stamp found in %d unstamped bytes", len(p))
		}
	}
	if p := rtpPayload([]byte{0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1}); p != nil {
		t.Errorf("header-only packet has payload %v", p)
	}
}

// Every delay falls in a bucket whose upper edge is at or above it and at
// most 1/32 above (exact below 64 µs), buckets never overlap and grow with
// the value.
func TestHistogramBucketsBoundTheValue(t *testing.T) {
	prev := -1
	for v := uint64(0); v < 1<<histMaxExp; v += 1 + v/257 {
		i := histBucket(v)
		if i < prev {
			t.Fatalf("bucket of %d µs is %d, below the bucket %d of a smaller value", v, i, prev)
		}
		prev = i
		up := histUpper(i)
		if up < v {
			t.Fatalf("%d µs in bucket %d whose upper edge is %d", v, i, up)
		}
		if v < 2*histSub && up != v {
			t.Fatalf("%d µs: upper edge %d, want exact", v, up)
		}
		if float64(up-v) > float64(v)/histSub {
			t.Fatalf("%d µs: upper edge %d is more than 1/%d above", v, up, histSub)
		}
		if i > 0 && histUpper(i-1) >= v {
			t.Fatalf("%d µs: the bucket below (%d) already reaches %d", v, i-1, histUpper(i-1))
		}
	}
	if i := histBucket(1 << 40); i != histBuckets-1 {
		t.Errorf("a delay beyond the range lands in bucket %d, want the last (%d)", i, histBuckets-1)
	}
}

func histOf(delays map[time.Duration]int) []uint64 {
	var h delayHist
	for d, n := range delays {
		for range n {
			h.record(d)
		}
	}
	out := make([]uint64, histBuckets)
	h.addTo(out)
	return out
}

// Percentiles are over the window only: what was counted before it (the
// first snapshot) is subtracted.
func TestDelayStatsOverTheWindow(t *testing.T) {
	// Before the window: slow packets that must not count.
	a := histOf(map[time.Duration]int{50 * time.Millisecond: 500})
	// In the window: 980 at 100 µs, 15 at 1.5 ms, 5 at 30 ms.
	b := histOf(map[time.Duration]int{
		50 * time.Millisecond:    500,
		100 * time.Microsecond:   980,
		1500 * time.Microsecond:  15,
		30000 * time.Microsecond: 5,
	})
	p50, p99, mx, n := delayStats(a, b)
	if n != 1000 {
		t.Fatalf("%d delays in the window, want 1000", n)
	}
	// Upper bucket edges: 100 µs is in [100, 101], 1,500 µs in [1,472, 1,503],
	// 30,000 µs in [29,696, 30,207].
	near(t, "p50 ms", p50, 0.101)
	near(t, "p99 ms", p99, 1.503)
	near(t, "max ms", mx, 30.207)

	// The 99th percentile is the 990th of 1,000: with 991 fast packets it
	// is fast.
	b2 := histOf(map[time.Duration]int{100 * time.Microsecond: 991, 30 * time.Millisecond: 9})
	_, p99, _, _ = delayStats(nil, b2)
	near(t, "p99 ms with 991 fast", p99, 0.101)

	if p50, p99, mx, n := delayStats(b, b); n != 0 || p50 != 0 || p99 != 0 || mx != 0 {
		t.Errorf("empty window: %v %v %v %d", p50, p99, mx, n)
	}
}

func TestMeasureDelay(t *testing.T) {
	a, b, idle := windowPair()
	a.delay = histOf(map[time.Duration]int{10 * time.Millisecond: 100})
	b.delay = histOf(map[time.Duration]int{10 * time.Millisecond: 100, 200 * time.Microsecond: 99, 3 * time.Millisecond: 1})
	r := rowResult{Subs: 2}
	r.measure(a, b, idle, true, true)
	if r.DelayPackets != 100 {
		t.Fatalf("%d delays, want 100", r.DelayPackets)
	}
	near(t, "p50 ms", r.DelayP50Ms, 0.203) // 200 µs: bucket [200, 203]
	near(t, "p99 ms", r.DelayP99Ms, 0.203)
	near(t, "max ms", r.DelayMaxMs, 3.007) // 3,000 µs: bucket [2,944, 3,007]

	if r.SockDelayPackets != 0 || r.SockDelayP99Ms != 0 {
		t.Errorf("socket delays without probe subscribers: %d, p99 %v", r.SockDelayPackets, r.SockDelayP99Ms)
	}
	a.sockDelay = histOf(map[time.Duration]int{20 * time.Millisecond: 10})
	b.sockDelay = histOf(map[time.Duration]int{20 * time.Millisecond: 10, 100 * time.Microsecond: 40})
	r.measure(a, b, idle, true, true)
	if r.SockDelayPackets != 40 {
		t.Fatalf("%d socket delays, want 40", r.SockDelayPackets)
	}
	near(t, "socket p99 ms", r.SockDelayP99Ms, 0.101)

	var buf bytes.Buffer
	r.Label = "meridian"
	printTable(&buf, []rowResult{r})
	if !strings.Contains(buf.String(), "| 0.10 / 0.10 / 0.10 | 0.20 / 0.20 / 3.01 |") {
		t.Errorf("table lacks the delay cells:\n%s", buf.String())
	}
	r.SockDelayP99Ms = 2.5
	if c := sockDelayCell(r); c != "0.10 / 2.50 (over) / 0.10" {
		t.Errorf("socket delay cell %q, want the p99 marked over the 2 ms target", c)
	}
	if c := delayCell(rowResult{}); c != "–" {
		t.Errorf("row without stamped packets: %q", c)
	}
	if c := sockDelayCell(rowResult{}); c != "–" {
		t.Errorf("row without probe subscribers: %q", c)
	}
}

// The publisher's stamps reach a real pion subscriber through SRTP over
// loopback, and the sink counts a delay for every packet of both kinds.
func TestSinkMeasuresDelayOfEveryPacket(t *testing.T) {
	api, err := newAPI("rr,twcc", false)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := newGenerator(mediaShape{FPS: 30, PktsPerFrame: 5, VideoBytes: 1000, AudioBytes: 100, KeyEvery: 2 * time.Second}, "camera")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	papi, arr, closeMux, err := probeAPI("rr,twcc", false)
	if err != nil {
		t.Fatal(err)
	}
	defer closeMux()
	sub, err := papi.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var senders []*webrtc.RTPSender
	for _, tr := range []webrtc.TrackLocal{gen.video, gen.audio} {
		s, err := pub.AddTrack(tr)
		if err != nil {
			t.Fatal(err)
		}
		senders = append(senders, s)
	}
	var sk sink
	sk.probeWith(arr)
	sub.OnTrack(sk.onTrack)
	pairPCs(t, pub, sub)
	gen.start(senders)
	var once sync.Once
	stop := func() { once.Do(gen.close) }
	defer stop()

	deadline := time.Now().Add(20 * time.Second)
	for !sk.receiving(30) {
		if time.Now().After(deadline) {
			t.Fatal("subscriber did not receive 30 packets of each kind")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Stop sending, close the subscriber and wait for its readers, so
	// the counters are final.
	stop()
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	sk.readers.Wait()
	for _, tc := range sk.counters() {
		h := make([]uint64, histBuckets)
		tc.delay.addTo(h)
		p50, _, mx, n := delayStats(nil, h)
		if got := tc.packets.Load(); n != got {
			t.Errorf("video=%v: %d packets, %d delays", tc.video, got, n)
		}
		if mx <= 0 || math.IsNaN(mx) {
			t.Errorf("video=%v: largest delay %v ms", tc.video, mx)
		}
		// Every packet's socket arrival was found, and it comes before the
		// read: each quantile of the socket delays is at most the read's.
		hs := make([]uint64, histBuckets)
		tc.sockDelay.addTo(hs)
		sp50, _, smx, sn := delayStats(nil, hs)
		if sn != n {
			t.Errorf("video=%v: %d socket delays for %d packets", tc.video, sn, n)
		}
		if sp50 > p50 || smx > mx {
			t.Errorf("video=%v: socket delay p50 %v max %v above the read's %v %v", tc.video, sp50, smx, p50, mx)
		}
	}
}

// pairPCs negotiates pub → sub directly (no server), candidates in the SDP.
func pairPCs(t *testing.T, pub, sub *webrtc.PeerConnection) {
	t.Helper()
	offer, err := pub.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	g := webrtc.GatheringCompletePromise(pub)
	if err := pub.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-g
	if err := sub.SetRemoteDescription(*pub.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	answer, err := sub.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	g = webrtc.GatheringCompletePromise(sub)
	if err := sub.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	<-g
	if err := pub.SetRemoteDescription(*sub.LocalDescription()); err != nil {
		t.Fatal(err)
	}
}
