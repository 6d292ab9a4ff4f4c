package main

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
)

// trackCounter is what one receiver saw on one track. Only the reader
// goroutine writes; the measuring goroutine reads atomically.
type trackCounter struct {
	video   bool
	packets atomic.Uint64
	bytes   atomic.Uint64
	// rtpBytes counts payload + 12 per packet, the unit the edge's
	// forwarder and cascade counters use (meridian_*_bytes_total), so a
	// subscriber's bytes compare with a relay leg's.
	rtpBytes atomic.Uint64
	highest  atomic.Int64 // extended sequence number of the newest packet, 0 before the first
	late     atomic.Uint64
	// delay counts the one-way delay of every stamped packet to the
	// subscriber's read (latency.go); sockDelay, on probe subscribers, to
	// the packet's arrival on the socket (arrival.go).
	delay     delayHist
	sockDelay delayHist
}

// sink counts what one participant receives. Every kind of server's
// subscriber (Meridian, the baseline, LiveKit, Janus) hands its
// PeerConnection's OnTrack to the same sink, so the receive path and the
// counting are identical whichever server sent the packets.
type sink struct {
	tmu     sync.Mutex
	tracks  []*trackCounter
	readers sync.WaitGroup
	// arr is set on probe subscribers: their socket's arrival times.
	arr atomic.Pointer[arrivals]
	// firstPacket is when the first media packet of any track was read
	// (UnixNano, 0 before): the join breakdown's "media flowing" mark.
	firstPacket atomic.Int64
}

// firstPacketAt is when this receiver read its first media packet (zero
// time before it has).
func (s *sink) firstPacketAt() time.Time {
	if ns := s.firstPacket.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// probeWith makes this subscriber a probe whose packets' socket arrival
// times are in a.
func (s *sink) probeWith(a *arrivals) { s.arr.Store(a) }

// onTrack starts the receive loop of one forwarded track: read into one
// reused buffer, take the sequence number straight from the RTP header.
func (s *sink) onTrack(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
	tc := &trackCounter{video: t.Kind() == webrtc.RTPCodecTypeVideo}
	s.tmu.Lock()
	s.tracks = append(s.tracks, tc)
	s.tmu.Unlock()
	s.readers.Add(2)
	go func() {
		defer s.readers.Done()
		buf := make([]byte, 1500)
		var highest int64
		for {
			n, _, err := t.Read(buf)
			if err != nil {
				return
			}
			now := stampNow()
			if s.firstPacket.Load() == 0 {
				s.firstPacket.CompareAndSwap(0, now) // stampNow: wall-clock ns
			}
			if n < 12 {
				continue
			}
			seq := binary.BigEndian.Uint16(buf[2:4])
			if at, ok := readStamp(rtpPayload(buf[:n])); ok {
				tc.delay.record(time.Duration(now - at))
				if a := s.arr.Load(); a != nil {
					if k, ok := a.get(binary.BigEndian.Uint32(buf[8:12]), seq); ok {
						tc.sockDelay.record(time.Duration(k - at))
					}
				}
			}
			var ext int64
			if highest == 0 {
				ext = 1<<32 + int64(seq)
			} else {
				ext = highest + int64(int16(seq-uint16(highest)))
			}
			if ext > highest {
				highest = ext
				tc.highest.Store(ext)
			} else {
				tc.late.Add(1)
			}
			tc.packets.Add(1)
			tc.bytes.Add(uint64(n))
			tc.rtpBytes.Add(uint64(rtpPayloadLen(buf[:n]) + 12))
		}
	}()
	// Drain the sender reports so pion's RTCP buffer never fills.
	go func() {
		defer s.readers.Done()
		buf := make([]byte, 1500)
		for {
			if _, _, err := r.Read(buf); err != nil {
				return
			}
		}
	}()
}

// counters returns the receiver's tracks.
func (s *sink) counters() []*trackCounter {
	s.tmu.Lock()
	defer s.tmu.Unlock()
	return append([]*trackCounter(nil), s.tracks...)
}

// receiving reports whether both kinds have delivered at least min packets.
func (s *sink) receiving(min uint64) bool {
	a, v := s.receivingKinds(min)
	return a && v
}

// receivingKinds reports per kind whether min packets have arrived.
func (s *sink) receivingKinds(min uint64) (a, v bool) {
	for _, t := range s.counters() {
		if t.packets.Load() >= min {
			if t.video {
				v = true
			} else {
				a = true
			}
		}
	}
	return a, v
}

// rtpPayloadLen is the payload size of an RTP packet (CSRCs, header
// extension and padding excluded), 0 if the packet is malformed.
func rtpPayloadLen(b []byte) int {
	h := 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 {
		if len(b) < h+4 {
			return 0
		}
		h += 4 + 4*int(binary.BigEndian.Uint16(b[h+2:h+4]))
	}
	n := len(b) - h
	if b[0]&0x20 != 0 && n > 0 {
		n -= int(b[len(b)-1])
	}
	return max(n, 0)
}
