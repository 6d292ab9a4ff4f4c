package sfu

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Forwarder moves one published track to one subscriber: it picks the
// simulcast layer, switches only on a keyframe of the target layer, rewrites
// the header through its Munger and writes to the DownTrack's binding.
//
// forward runs on the track's layer reader goroutines; everything else on
// signaling or housekeeping goroutines. mu serialises the munger and the
// reused header; it is held across WriteRTP (a non-blocking UDP write) and
// never across a callback or a channel send.
type Forwarder struct {
	track *PublishedTrack
	dt    *DownTrack
	sub   *Subscriber

	current atomic.Int32 // layer being forwarded, noLayer before the first keyframe
	target  atomic.Int32 // layer wanted
	pinned  atomic.Int32 // autoPick or a pinned layer
	// waitingSince is when the forwarder started waiting for a keyframe (ns since
	// monoEpoch), 0 when not waiting.
	waitingSince atomic.Int64

	// relay: this forwarder feeds a cascade leg; it carries exactly one
	// layer and keeps the audio level, so the far edge can detect speakers.
	relay bool

	mu     sync.Mutex
	munger Munger
	hdr    rtp.Header // reused for every written packet
	// segs maps output sequence numbers back to their source (NACKs).
	segs segments
	// twccBuf holds the transport-cc extension value the header points at;
	// rtxBuf is the reused copy of a packet being retransmitted.
	twccBuf [2]byte
	rtxBuf  []byte

	stats outboundStats
}

// newForwarder builds the forwarder of t for sub; relayLayer is autoPick
// for a client, or the one layer a relay subscriber's DownTrack carries.
func newForwarder(t *PublishedTrack, sub *Subscriber, relayLayer int) *Forwarder {
	f := &Forwarder{track: t, sub: sub}
	f.dt = &DownTrack{
		id: t.info.TrackID, streamID: t.info.ParticipantID, kind: t.kind, mime: t.codec.MimeType,
		// A keyframe asked for before the transport is up arrives before
		// anything can be forwarded and spends the publisher's once-a-second
		// request; the connect (Subscriber) asks instead. A track added to a
		// connected subscriber asks at once.
		onBind: func() {
			if !f.relay && f.transportUp() {
				f.RequestKeyframe()
			}
		},
	}
	f.current.Store(noLayer)
	f.pinned.Store(autoPick)
	f.target.Store(0)
	if relayLayer != autoPick {
		f.relay = true
		f.dt.id = relayTrackID(t.Info(), relayLayer)
		f.pinned.Store(int32(relayLayer))
		f.target.Store(int32(relayLayer))
		defer f.waitingSince.Store(0) // never waits for a keyframe
	} else if t.simulcast {
		// Start at the best layer present; housekeeping adjusts it to the estimate.
		avail, _ := t.availableLayers()
		for i := nLayers - 1; i >= 0; i-- {
			if avail[i] {
				f.target.Store(int32(i))
				break
			}
		}
	}
	f.waitingSince.Store(monoNow())
	return f
}

// directSender is the subscriber connection's direct SRTP writer, nil
// while pion's path serves it (srtpdirect.go).
func (f *Forwarder) directSender() *directSender {
	if f.sub == nil {
		return nil
	}
	return f.sub.direct.Load()
}

// transportUp reports whether what the forwarder writes can reach its
// subscriber (a tap has no transport of its own).
func (f *Forwarder) transportUp() bool { return f.sub == nil || f.sub.connected.Load() }

// receiving reports whether the forwarder is negotiated and its transport up.
func (f *Forwarder) receiving() bool { return f.dt.b.Load() != nil && f.transportUp() }

// DownTrack returns the local track the subscriber PC sends.
func (f *Forwarder) DownTrack() *DownTrack { return f.dt }

// forward handles one packet of layer idx. Hot path: no allocation.
func (f *Forwarder) forward(idx int, pkt *rtp.Packet, key bool, arrival int64) {
	cur, tgt := int(f.current.Load()), int(f.target.Load())
	if idx != cur && idx != tgt {
		return
	}
	b := f.dt.b.Load()
	if b == nil || !f.transportUp() {
		f.stats.skipNotConnected.Add(1)
		return // not negotiated or not connected yet
	}
	f.mu.Lock()
	cur, tgt = int(f.current.Load()), int(f.target.Load())
	if idx == tgt && cur != tgt {
		// A relay forwards from the first packet: the far edge gates on
		// keyframes per subscriber, and waiting here too would cost a
		// second keyframe (and a second of the publisher's request budget).
		if !key && !f.relay {
			f.mu.Unlock()
			if cur == noLayer {
				f.stats.skipNoKeyframe.Add(1) // the subscriber sees nothing until a keyframe
			}
			return
		}
		if cur != noLayer || f.munger.started {
			f.munger.Switch()
		}
		f.current.Store(int32(tgt))
		f.waitingSince.Store(0)
	} else if idx != cur {
		f.mu.Unlock()
		return
	}
	fresh := !f.munger.started || f.munger.rebase
	out, res := f.munger.Update(MungeIn{Seq: pkt.SequenceNumber, TS: pkt.Timestamp, Arrival: arrival, ClockRate: f.track.codec.ClockRate})
	if !res.Forwarded() {
		f.mu.Unlock()
		f.stats.skipMunger.Add(1)
		return
	}
	if fresh {
		m := &f.munger
		f.segs.push(segment{layer: idx, outStart: m.outHighest, seqOffset: m.seqOffset, tsOffset: m.tsOffset})
	}
	h := f.header(b, out.Seq, out.TS, pkt.Marker)
	h.Padding, h.PaddingSize = pkt.Padding, pkt.PaddingSize
	if f.relay && b.levelExt != 0 && f.track.levelExt != 0 {
		if lv := pkt.GetExtension(f.track.levelExt); len(lv) == 1 {
			_ = h.SetExtension(b.levelExt, lv)
		}
	}
	err := f.write(b, h, pkt.Payload)
	f.mu.Unlock()
	if err != nil {
		f.stats.writeErrors.Add(1)
	} else {
		f.stats.packets.Add(1)
		f.stats.bytes.Add(uint64(len(pkt.Payload) + 12))
		if pkt.Marker {
			f.stats.frames.Add(1)
		}
	}
}

// header fills the reused header for one packet to b (f.mu held).
func (f *Forwarder) header(b *binding, seq uint16, ts uint32, marker bool) *rtp.Header {
	h := &f.hdr
	ext := h.Extensions[:0]
	*h = rtp.Header{
		Version:        2,
		Marker:         marker,
		PayloadType:    b.pt,
		SequenceNumber: seq,
		Timestamp:      ts,
		SSRC:           b.ssrc,
		Extensions:     ext,
	}
	return h
}

// write sends one packet, stamped with the subscriber's next transport-wide
// sequence number when transport-cc is negotiated (f.mu held).
func (f *Forwarder) write(b *binding, h *rtp.Header, payload []byte) error {
	var tw *twccSender
	var seq uint16
	if b.twccExt != 0 && f.sub != nil {
		tw = f.sub.twcc
		seq = tw.nextSeq()
		f.twccBuf = [2]byte{byte(seq >> 8), byte(seq)}
		_ = h.SetExtension(b.twccExt, f.twccBuf[:])
	}
	var err error
	if d := f.directSender(); d != nil {
		err = d.writeRTP(h, payload)
	} else {
		_, err = b.w.WriteRTP(h, payload)
	}
	if tw != nil && err == nil {
		tw.sent(seq, h.MarshalSize()+len(payload), monoNow())
	}
	return err
}

// retransmit answers a subscriber's NACK entry (RFC 4585 §6.2.1: pid and
// the bitmask of the 16 following sequence numbers) from the track's
// retransmission buffers, rewriting each packet as it was first sent.
func (f *Forwarder) retransmit(pid, blp uint16) {
	b := f.dt.b.Load()
	if b == nil {
		return
	}
	for i := 0; i <= 16; i++ {
		if i > 0 && blp&(1<<(i-1)) == 0 {
			continue
		}
		f.stats.nacks.Add(1)
		f.resend(b, pid+uint16(i))
	}
}

func (f *Forwarder) resend(b *binding, seq uint16) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := &f.munger
	if !m.started {
		return
	}
	ext := unwrap16(seq, m.outHighest)
	if ext > m.outHighest || m.outHighest-ext >= retxSize {
		return
	}
	sg, ok := f.segs.lookup(ext)
	if !ok {
		return
	}
	buf := f.track.retxOf(sg.layer)
	if buf == nil {
		return
	}
	payload, ts, marker, ok := buf.get(uint16(ext+sg.seqOffset), f.rtxBuf)
	f.rtxBuf = payload
	if !ok || len(payload) == 0 {
		return
	}
	h := f.header(b, seq, ts-uint32(sg.tsOffset), marker)
	if f.write(b, h, payload) == nil {
		f.stats.retransmits.Add(1)
	}
}

// connectedNow is called once the subscriber's transport is up: a
// forwarder still waiting asks for its keyframe now (what it could have
// forwarded before was lost). One that already started, on a keyframe
// that came in between the connect and this call, is left alone: starting
// it over would renumber its stream in the middle.
func (f *Forwarder) connectedNow() {
	if f.relay || f.current.Load() != noLayer {
		return
	}
	f.waitingSince.Store(monoNow())
	f.RequestKeyframe()
}

// resync makes the forwarder wait for the next keyframe of its target layer
// and continue the output stream from there (after a pause).
func (f *Forwarder) resync() {
	f.mu.Lock()
	f.current.Store(noLayer)
	f.mu.Unlock()
	if f.relay {
		return
	}
	f.waitingSince.Store(monoNow())
	f.RequestKeyframe()
}

// setTarget changes the wanted layer; the switch happens at its next
// keyframe. The keyframe is asked for only once the forwarder can receive
// it: before its subscriber's answer binds it, or before the transport is
// up, the answer would go by unused and spend the layer's request budget,
// and the bind's own request (DownTrack.onBind, connectedNow) would then
// wait out the limiter. Since tracks are announced from the SDP, a layer
// often starts, and the housekeeping picks it, before the subscriber
// answered.
func (f *Forwarder) setTarget(idx int) {
	if !f.track.simulcast || idx < 0 || idx >= nLayers {
		return
	}
	if f.target.Swap(int32(idx)) == int32(idx) {
		return
	}
	if f.current.Load() != int32(idx) {
		f.waitingSince.Store(monoNow())
		if f.receiving() {
			f.track.RequestKeyframe(idx)
		}
	}
}

// Pin fixes the layer ("q", "h", "f") or returns to automatic selection ("auto").
func (f *Forwarder) Pin(layer string) bool {
	idx := LayerIndex(layer)
	if idx == noLayer {
		return false
	}
	f.pinned.Store(int32(idx))
	if idx >= 0 {
		f.setTarget(idx)
	}
	return true
}

// RequestKeyframe asks the publisher for a keyframe of the layer this
// forwarder waits for (or forwards).
func (f *Forwarder) RequestKeyframe() {
	if f.track.kind != webrtc.RTPCodecTypeVideo {
		return
	}
	f.stats.plis.Add(1)
	f.track.RequestKeyframe(int(f.target.Load()))
}

// waiting reports whether the forwarder has been waiting for a keyframe
// longer than d.
func (f *Forwarder) waiting(d time.Duration) bool {
	w := f.waitingSince.Load()
	return w != 0 && f.dt.b.Load() != nil && monoNow()-w > int64(d)
}
