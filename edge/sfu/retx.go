package sfu

import (
	"sync"

	"github.com/pion/rtp"
)

// retxSize is how many packets a published video layer keeps for
// retransmission: over a second of video at the rates we forward (one
// 720p layer is ~150-250 packets/s), which covers every path where a
// retransmission still arrives in time to be played.
const retxSize = 512

// retxBuffer keeps the last retxSize packets of one incoming layer, once,
// for every subscriber of the track (pion's NACK responder kept a copy per
// subscriber: 256 packets per stream, ~300 KB per video subscriber). A
// subscriber's NACK names its own sequence numbers; its Forwarder maps them
// back to this layer's numbers (segment) and rewrites the header at send
// time. Written by the layer's reader goroutine, read by subscribers' RTCP
// goroutines; the copy in and out is a memmove of one packet.
type retxBuffer struct {
	mu    sync.RWMutex
	slots [retxSize]retxSlot
}

type retxSlot struct {
	valid  bool
	seq    uint16
	ts     uint32
	marker bool
	// payload reuses its array: after the first lap of the ring a slot
	// only grows for a packet larger than any it held before.
	payload []byte
}

// add stores a copy of pkt (layer reader goroutine).
func (b *retxBuffer) add(pkt *rtp.Packet) {
	b.mu.Lock()
	s := &b.slots[pkt.SequenceNumber%retxSize]
	s.valid, s.seq, s.ts, s.marker = true, pkt.SequenceNumber, pkt.Timestamp, pkt.Marker
	s.payload = append(s.payload[:0], pkt.Payload...)
	b.mu.Unlock()
}

// get copies the packet with sequence number seq into dst (reusing its
// array) and reports its timestamp and marker; ok is false when the packet
// is not (or no longer) held.
func (b *retxBuffer) get(seq uint16, dst []byte) (payload []byte, ts uint32, marker, ok bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	s := &b.slots[seq%retxSize]
	if !s.valid || s.seq != seq {
		return dst, 0, false, false
	}
	return append(dst[:0], s.payload...), s.ts, s.marker, true
}

// segment is one stretch of a forwarder's output taken from one source
// (layer) with one pair of offsets: out = in - offset (extended numbers).
// A new segment starts at every switch (layer change, resync, seed).
type segment struct {
	layer     int
	outStart  uint64 // extended output sequence number of its first packet
	seqOffset uint64
	tsOffset  uint64
}

// nSegments is how many switches back a NACK can reach: switches are at
// least a keyframe apart, so a few cover far more than the buffer holds.
const nSegments = 8

// segments is a forwarder's recent output history (guarded by its mu).
type segments struct {
	s [nSegments]segment
	n int // segments recorded (the latest at (n-1)%nSegments)
}

func (g *segments) push(s segment) {
	g.s[g.n%nSegments] = s
	g.n++
}

// lookup maps an extended output sequence number to its source.
func (g *segments) lookup(out uint64) (segment, bool) {
	for i := 0; i < min(g.n, nSegments); i++ {
		s := g.s[(g.n-1-i)%nSegments]
		if out >= s.outStart {
			return s, true
		}
	}
	return segment{}, false
}
