package main

import (
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// mediaShape is what the publisher sends. The defaults give 200 packets/s:
// 30 frames/s × 5 packets of ~1000 B of VP8-shaped video (a key frame every
// 2 s or on request) and 50 packets/s of ~100 B Opus-shaped audio.
type mediaShape struct {
	FPS          int           `json:"fps"`
	PktsPerFrame int           `json:"pktsPerFrame"`
	VideoBytes   int           `json:"videoBytes"`
	AudioBytes   int           `json:"audioBytes"`
	KeyEvery     time.Duration `json:"keyEvery"`
	// Pace spreads a frame's packets over this long (0: back to back, the
	// worst case for a fan-out). Browsers pace: Chrome sends video at about
	// 2.5× its target rate.
	Pace time.Duration `json:"pace,omitempty"`
}

func (m mediaShape) packetsPerSecond() float64 { return float64(m.FPS*m.PktsPerFrame) + 50 }

// generator writes synthetic media into two local tracks. The loops reuse
// one rtp.Packet and one payload buffer each.
type generator struct {
	shape     mediaShape
	video     *webrtc.TrackLocalStaticRTP
	audio     *webrtc.TrackLocalStaticRTP
	keyReq    atomic.Bool
	sent      atomic.Uint64 // packets written (both kinds)
	videoSent atomic.Uint64
	audioSent atomic.Uint64
	keys      atomic.Uint64
	// When keyframe requests arrived and key frames went out (the
	// cascade failover reports them relative to the kill).
	evMu   sync.Mutex
	plisAt []time.Time
	keysAt []time.Time
	stop   chan struct{}
	done   chan struct{}
}

func newGenerator(shape mediaShape, streamID string) (*generator, error) {
	v, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", streamID)
	if err != nil {
		return nil, err
	}
	a, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", streamID)
	if err != nil {
		return nil, err
	}
	return &generator{shape: shape, video: v, audio: a, stop: make(chan struct{}), done: make(chan struct{})}, nil
}

// start runs the loops; senders are the publisher PC's RTP senders (video
// first), read for keyframe requests.
func (g *generator) start(senders []*webrtc.RTPSender) {
	for _, s := range senders {
		go g.readRTCP(s)
	}
	levelID := uint8(0)
	if len(senders) > 1 {
		for _, e := range senders[1].GetParameters().HeaderExtensions {
			if e.URI == audioLevelURI {
				levelID = uint8(e.ID)
			}
		}
	}
	go func() {
		defer close(g.done)
		vdone := make(chan struct{})
		go func() { defer close(vdone); g.videoLoop() }()
		g.audioLoop(levelID)
		<-vdone
	}()
}

func (g *generator) close() {
	close(g.stop)
	<-g.done
}

func (g *generator) readRTCP(s *webrtc.RTPSender) {
	buf := make([]byte, 1500)
	for {
		n, _, err := s.Read(buf)
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				g.keyReq.Store(true)
				g.evMu.Lock()
				g.plisAt = append(g.plisAt, time.Now())
				g.evMu.Unlock()
			}
		}
	}
}

func (g *generator) videoLoop() {
	sh := g.shape
	payload := make([]byte, sh.VideoBytes)
	for i := range payload {
		payload[i] = byte(i*7 + 1)
	}
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(rand.Uint32()), Timestamp: rand.Uint32()}}
	tick := time.NewTicker(time.Second / time.Duration(sh.FPS))
	defer tick.Stop()
	g.keyReq.Store(true)
	lastKey := time.Now()
	for {
		select {
		case <-g.stop:
			return
		case now := <-tick.C:
			key := g.keyReq.Swap(false)
			if now.Sub(lastKey) >= sh.KeyEvery {
				key = true
			}
			if key {
				lastKey = now
				g.keys.Add(1)
				g.evMu.Lock()
				g.keysAt = append(g.keysAt, time.Now())
				g.evMu.Unlock()
			}
			pkt.Timestamp += uint32(90000 / sh.FPS)
			for i := 0; i < sh.PktsPerFrame; i++ {
				vp8Packet(payload, i == 0, key)
				pkt.Payload = payload
				pkt.Marker = i == sh.PktsPerFrame-1
				if len(payload) >= 11+stampLen { // never over the VP8 header
					stampPayload(payload, stampNow())
				}
				if g.video.WriteRTP(&pkt) == nil {
					g.videoSent.Add(1)
					g.sent.Add(1)
				}
				pkt.SequenceNumber++
				if sh.Pace > 0 && i < sh.PktsPerFrame-1 {
					time.Sleep(sh.Pace / time.Duration(sh.PktsPerFrame))
				}
			}
		}
	}
}

// vp8Packet writes a VP8 payload descriptor (S bit on the first packet of a
// frame) and, on the first packet, a frame tag; key frames carry the start
// code and a 1280×720 size, which the edge parses.
func vp8Packet(p []byte, first, key bool) {
	if !first {
		p[0] = 0x00
		return
	}
	p[0] = 0x10 // S=1, PID=0
	if !key {
		p[1], p[2], p[3] = 0x11, 0x00, 0x00 // P=1: inter frame
		return
	}
	p[1], p[2], p[3] = 0x10, 0x00, 0x00 // P=0: key frame
	p[4], p[5], p[6] = 0x9d, 0x01, 0x2a
	binary.LittleEndian.PutUint16(p[7:], 1280)
	binary.LittleEndian.PutUint16(p[9:], 720)
}

func (g *generator) audioLoop(levelID uint8) {
	payload := make([]byte, g.shape.AudioBytes)
	payload[0] = 0x78 // TOC: CELT FB 20 ms mono
	for i := 1; i < len(payload); i++ {
		payload[i] = 0xA5
	}
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(rand.Uint32()), Timestamp: rand.Uint32()}, Payload: payload}
	level := []byte{0x80 | 40} // voice activity, -40 dBov
	if levelID != 0 {
		_ = pkt.Header.SetExtension(levelID, level)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-tick.C:
			stampPayload(payload, stampNow())
			if g.audio.WriteRTP(&pkt) == nil {
				g.audioSent.Add(1)
				g.sent.Add(1)
			}
			pkt.SequenceNumber++
			pkt.Timestamp += 960
		}
	}
}

// events returns the times of keyframe requests and key frames since t.
func (g *generator) events(since time.Time) (plis, keys []time.Duration) {
	g.evMu.Lock()
	defer g.evMu.Unlock()
	for _, t := range g.plisAt {
		if t.After(since) {
			plis = append(plis, t.Sub(since))
		}
	}
	for _, t := range g.keysAt {
		if t.After(since) {
			keys = append(keys, t.Sub(since))
		}
	}
	return plis, keys
}
