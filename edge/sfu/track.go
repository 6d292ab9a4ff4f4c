package sfu

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	wire "github.com/meridian-video/meridian/shared/signal"
)

// Simulcast layers, lowest first. A non-simulcast track has only layer 0.
const (
	LayerQ   = 0
	LayerH   = 1
	LayerF   = 2
	nLayers  = 3
	noLayer  = -1
	autoPick = -2
)

// LayerIndex maps a rid (or set-layer value) to a layer; "auto" gives -2 and
// unknown values -1.
func LayerIndex(rid string) int {
	switch rid {
	case "q", "l", "low", "0":
		return LayerQ
	case "h", "m", "mid", "1":
		return LayerH
	case "f", "high", "2":
		return LayerF
	case "auto", "":
		return autoPick
	}
	return noLayer
}

// monoEpoch is the origin of the monotonic arrival times handed to mungers.
var monoEpoch = time.Now()

func monoNow() int64 { return int64(time.Since(monoEpoch)) }

// layer is one incoming RTP stream (one rid) of a published track.
type layer struct {
	idx    int
	rid    string
	remote *webrtc.TrackRemote
	recv   *webrtc.RTPReceiver
	ssrc   uint32
	kf     keyframeLimiter // guarded by PublishedTrack.mu
	stats  inboundStats
	// retx serves subscribers' NACKs (video only: audio is not NACKed).
	retx *retxBuffer
}

// PublishedTrack is one track a participant publishes: up to three simulcast
// layers read by one goroutine each, fanned out to Forwarders.
type PublishedTrack struct {
	pub       *Publisher
	info      wire.TrackInfo // immutable except Muted (under mu)
	kind      webrtc.RTPCodecType
	codec     webrtc.RTPCodecParameters
	ck        codecKind
	levelExt  uint8 // audio-level header extension id, 0 if not negotiated
	simulcast bool

	// fwds is the fan-out list, replaced copy-on-write under mu and read
	// without a lock per packet.
	fwds atomic.Pointer[[]*Forwarder]
	// paused stops forwarding (a moderator muted this kind).
	paused atomic.Bool
	// batch turns a fan-out's writes to the edge's media sockets into a
	// few sendmmsg calls (nil: no mux, or a test track).
	batch *sendBatcher

	levelSum   atomic.Uint64
	levelCount atomic.Uint64

	mu      sync.Mutex
	layers  [nLayers]*layer
	running int // layer readers still running
	ended   bool
	wg      sync.WaitGroup
}

func newPublishedTrack(p *Publisher, remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver, trackID string) *PublishedTrack {
	kind := remote.Kind()
	return newTrackWithInfo(p, remote, recv, wire.TrackInfo{
		TrackID:       trackID,
		ParticipantID: p.part.id,
		Kind:          kind.String(),
		Source:        sourceOf(remote.StreamID(), kind),
		Simulcast:     len(recv.Tracks()) > 1,
	})
}

// newTrackWithInfo builds a track whose description is known (relayed
// tracks carry theirs in the relay track id).
func newTrackWithInfo(p *Publisher, remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver, info wire.TrackInfo) *PublishedTrack {
	return newTrack(p, remote.Kind(), remote.Codec(), recv.GetParameters().HeaderExtensions, info)
}

// newTrack builds a track from its negotiated codec and header extensions
// (from its first packet, or from the SDP for a track announced before it).
func newTrack(p *Publisher, kind webrtc.RTPCodecType, codec webrtc.RTPCodecParameters, exts []webrtc.RTPHeaderExtensionParameter, info wire.TrackInfo) *PublishedTrack {
	t := &PublishedTrack{pub: p, info: info, kind: kind, codec: codec, simulcast: info.Simulcast, batch: p.part.room.sfu.media.batch}
	t.ck = codecFromMime(t.codec.MimeType)
	for _, e := range exts {
		if e.URI == audioLevelURI {
			t.levelExt = uint8(e.ID)
		}
	}
	empty := []*Forwarder{}
	t.fwds.Store(&empty)
	return t
}

// sourceOf derives the track source from the publisher's MediaStream id.
func sourceOf(streamID string, kind webrtc.RTPCodecType) string {
	screen := streamID == "screen"
	switch {
	case kind == webrtc.RTPCodecTypeAudio && screen:
		return "screen_audio"
	case kind == webrtc.RTPCodecTypeAudio:
		return "microphone"
	case screen:
		return "screen"
	}
	return "camera"
}

// ID is the publisher's track id.
func (t *PublishedTrack) ID() string { return t.info.TrackID }

// Info returns the track's description.
func (t *PublishedTrack) Info() wire.TrackInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.info
}

// addLayer registers a remote stream; it reports false when the layer is
// taken or the track has ended.
func (t *PublishedTrack) addLayer(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) (*layer, bool) {
	idx := 0
	if t.simulcast {
		idx = LayerIndex(remote.RID())
		if idx < 0 {
			return nil, false
		}
	}
	return t.addLayerAt(remote, recv, idx)
}

// addLayerAt registers a remote stream as layer idx.
func (t *PublishedTrack) addLayerAt(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver, idx int) (*layer, bool) {
	if idx < 0 || idx >= nLayers || (!t.simulcast && idx != 0) {
		return nil, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended || t.layers[idx] != nil {
		return nil, false
	}
	l := &layer{idx: idx, rid: remote.RID(), remote: remote, recv: recv, ssrc: uint32(remote.SSRC())}
	if t.kind == webrtc.RTPCodecTypeVideo {
		l.retx = &retxBuffer{}
	}
	l.kf.interval = t.pub.part.room.sfu.cfg.KeyframeInterval
	t.layers[idx] = l
	t.running++
	t.wg.Add(1)
	return l, true
}

// start runs a layer's readers: media, and the RTCP the publisher sends on
// it. pion processes sender reports only when that RTCP is read; unread,
// the receiver reports we send carry no LSR and no round trip can be
// computed (for publishers, and for cascade legs seen from the far end).
func (t *PublishedTrack) start(l *layer) {
	go t.readLoop(l)
	if l.recv == nil {
		return
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		buf := make([]byte, 1500)
		for {
			var err error
			if l.rid != "" {
				_, _, err = l.recv.ReadSimulcast(buf, l.rid)
			} else {
				_, _, err = l.recv.Read(buf)
			}
			if err != nil {
				return
			}
		}
	}()
}

// readLoop reads one layer until the PeerConnection closes it. It is the hot
// path: one reused buffer and packet, no allocation of its own.
func (t *PublishedTrack) readLoop(l *layer) {
	defer t.layerDone()
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	clock := t.codec.ClockRate
	video := t.kind == webrtc.RTPCodecTypeVideo
	first := video
	for {
		n, _, err := l.remote.Read(buf)
		if err != nil {
			return
		}
		if err := pkt.Unmarshal(buf[:n]); err != nil {
			continue
		}
		arrival := monoNow()
		// Padding-only packets (bandwidth probes) count for sequence and
		// loss accounting but not for the layer's media bitrate: a starved
		// simulcast layer full of probes must not look like a healthy one.
		size := n
		if pkt.Padding && len(pkt.Payload) == 0 {
			size = 0
		}
		l.stats.onPacket(pkt.SequenceNumber, pkt.Timestamp, size, arrival, clock, video && pkt.Marker)
		key := true
		if video {
			key = isKeyframe(t.ck, pkt.Payload)
			if key {
				t.keyframeArrived(l)
			}
			if first {
				first = false
				if !key {
					t.keyframeForWaiting(l.idx)
				}
			}
			if key && t.ck == codecVP8 {
				if w, h, ok := vp8Size(pkt.Payload); ok {
					l.stats.width.Store(int32(w))
					l.stats.height.Store(int32(h))
				}
			}
		} else if t.levelExt != 0 {
			if ext := pkt.GetExtension(t.levelExt); len(ext) > 0 {
				t.levelSum.Add(uint64(127 - ext[0]&0x7f))
				t.levelCount.Add(1)
			}
		}
		if l.retx != nil {
			l.retx.add(&pkt)
		}
		t.fanOut(l.idx, &pkt, key, arrival)
	}
}

// retxOf returns layer idx's retransmission buffer (nil if none).
func (t *PublishedTrack) retxOf(idx int) *retxBuffer {
	if idx < 0 || idx >= nLayers {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if l := t.layers[idx]; l != nil {
		return l.retx
	}
	return nil
}

func (t *PublishedTrack) fanOut(idx int, pkt *rtp.Packet, key bool, arrival int64) {
	if t.paused.Load() {
		return
	}
	t.batch.begin()
	for _, f := range *t.fwds.Load() {
		f.forward(idx, pkt, key, arrival)
	}
	t.batch.end()
}

func (t *PublishedTrack) layerDone() {
	t.mu.Lock()
	t.running--
	last := t.running == 0 && !t.ended
	if last {
		t.ended = true
	}
	t.mu.Unlock()
	t.wg.Done()
	if last {
		t.pub.trackEnded(t)
	}
}

// endIfIdle ends a track none of whose layers ever started (announced from
// an offer, then negotiated away before its first packet) and reports
// whether it did.
func (t *PublishedTrack) endIfIdle() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended || t.layers != [nLayers]*layer{} {
		return false
	}
	t.ended = true
	return true
}

// end marks the track finished (the publisher is closing).
func (t *PublishedTrack) end() {
	t.mu.Lock()
	t.ended = true
	t.mu.Unlock()
}

// stopReceivers ends the layer readers of a track whose PeerConnection
// stays open (a relayed track on a shared cascade leg).
func (t *PublishedTrack) stopReceivers() {
	t.mu.Lock()
	ls := t.layers
	t.mu.Unlock()
	for _, l := range ls {
		if l != nil && l.recv != nil {
			_ = l.recv.Stop()
		}
	}
}

func (t *PublishedTrack) addForwarder(f *Forwarder) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := *t.fwds.Load()
	next := make([]*Forwarder, 0, len(cur)+1)
	next = append(next, cur...)
	next = append(next, f)
	t.fwds.Store(&next)
}

func (t *PublishedTrack) removeForwarder(f *Forwarder) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := *t.fwds.Load()
	next := slices.DeleteFunc(slices.Clone(cur), func(x *Forwarder) bool { return x == f })
	t.fwds.Store(&next)
}

func (t *PublishedTrack) forwarders() []*Forwarder { return *t.fwds.Load() }

// availableLayers returns which layers carry media and their bitrates. A
// video layer must have delivered frames, and a simulcast layer whose frame
// rate collapsed below half of the next lower layer's (the encoder starves
// it when bandwidth is short) is not offered: forwarding it would freeze
// the subscriber's video.
func (t *PublishedTrack) availableLayers() (avail [nLayers]bool, rates [nLayers]float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var fps [nLayers]float64
	video := t.kind == webrtc.RTPCodecTypeVideo
	for i, l := range t.layers {
		if l == nil || l.stats.packets.Load() == 0 || (video && l.stats.frames.Load() == 0) {
			continue
		}
		avail[i] = true
		rates[i] = l.stats.bitrate.rate.Load() * 8
		fps[i] = l.stats.fps.rate.Load()
	}
	if video && t.simulcast {
		lower := -1
		for i := 0; i < nLayers; i++ {
			if !avail[i] {
				continue
			}
			if lower >= 0 && fps[lower] > 0 && fps[i] < fps[lower]/2 {
				avail[i] = false
				continue
			}
			lower = i
		}
	}
	return avail, rates
}

// RequestKeyframe asks the publisher for a keyframe on layer idx, at most
// once per KeyframeInterval per layer; a request inside the interval is sent
// when it ends (by the room's housekeeping).
func (t *PublishedTrack) RequestKeyframe(idx int) {
	if t.kind != webrtc.RTPCodecTypeVideo || idx < 0 || idx >= nLayers {
		return
	}
	t.mu.Lock()
	l := t.layers[idx]
	if l == nil {
		t.mu.Unlock()
		return
	}
	sfu := t.pub.part.room.sfu
	send := l.kf.Request(sfu.now())
	ssrc := l.ssrc
	t.mu.Unlock()
	if !send {
		sfu.keyframes.deferred.Add(1)
		return
	}
	t.pub.sendPLI(ssrc)
}

// keyframeForWaiting asks for a keyframe of layer idx when its first packet
// is not one, only if a forwarder that can receive it already waits for
// that layer (a relayed layer joining mid-stream, a lost first packet). A
// new encoder starts with a keyframe, and since tracks are announced from
// the SDP (Publisher.announce) subscribers are often bound before it
// arrives: a request then would only spend the limiter's budget on a
// second keyframe, and make the next subscriber to connect wait out the
// rest of its interval (the join benchmark's slow first keyframes).
func (t *PublishedTrack) keyframeForWaiting(idx int) {
	for _, f := range t.forwarders() {
		if f.waitingSince.Load() != 0 && int(f.target.Load()) == idx && f.receiving() {
			t.RequestKeyframe(idx)
			return
		}
	}
}

// keyframeArrived lets the layer's next keyframe request go sooner (see
// keyframeLimiter).
func (t *PublishedTrack) keyframeArrived(l *layer) {
	t.mu.Lock()
	l.kf.Answered()
	t.mu.Unlock()
}

// flushKeyframes sends deferred keyframe requests that are due.
func (t *PublishedTrack) flushKeyframes(now time.Time) {
	var due []uint32
	t.mu.Lock()
	for _, l := range t.layers {
		if l != nil && l.kf.Due(now) {
			due = append(due, l.ssrc)
		}
	}
	t.mu.Unlock()
	for _, ssrc := range due {
		t.pub.sendPLI(ssrc)
	}
}

// tick updates rates (room housekeeping goroutine).
func (t *PublishedTrack) tick(now time.Time) {
	t.mu.Lock()
	ls := t.layers
	t.mu.Unlock()
	for _, l := range ls {
		if l != nil {
			l.stats.bitrate.update(now, l.stats.bytes.Load())
			l.stats.fps.update(now, l.stats.frames.Load())
		}
	}
}

// setPaused stops or resumes forwarding to everyone; on resume every
// forwarder re-syncs at the next keyframe.
func (t *PublishedTrack) setPaused(p bool) {
	if t.paused.Swap(p) == p || p {
		return
	}
	for _, f := range t.forwarders() {
		f.resync()
	}
}

func (t *PublishedTrack) setMuted(m bool) {
	t.mu.Lock()
	t.info.Muted = m
	t.mu.Unlock()
}

// stats summarises what the publisher sends (edge inbound).
func (t *PublishedTrack) inbound() (bitrate float64, packets, lost int64, jitterMs float64, w, h int, fps float64) {
	t.mu.Lock()
	ls := t.layers
	t.mu.Unlock()
	for _, l := range ls {
		if l == nil {
			continue
		}
		bitrate += l.stats.bitrate.rate.Load() * 8
		packets += int64(l.stats.packets.Load())
		lost += l.stats.lost()
		jitterMs = max(jitterMs, l.stats.jitter.Load()*1000)
		if lw := int(l.stats.width.Load()); lw >= w {
			w, h = lw, int(l.stats.height.Load())
			fps = l.stats.fps.rate.Load()
		}
	}
	return
}

// pliPacket builds the keyframe request for one SSRC.
func pliPacket(ssrc uint32) []rtcp.Packet {
	return []rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}
}
