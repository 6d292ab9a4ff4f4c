package main

import (
	"encoding/binary"
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Forwarding latency: the publisher writes its send time into the last 12
// bytes of every RTP payload (a 4-byte marker and a monotonic nanosecond
// clock), and every subscriber's sink subtracts it from its own clock on
// arrival. Publisher and subscribers run in this process on loopback, so
// one monotonic clock serves both ends and no clock sync is needed.
//
// Why the payload and not a header extension: every SFU forwards payload
// bytes untouched (the VP8 descriptor at the front may be rewritten, the
// tail never is), while header extensions are renegotiated per subscriber
// and rewritten or dropped differently by each server (Meridian, LiveKit and
// Janus each keep only the extensions they negotiate on the subscriber leg).
// What the delay includes: the publisher's SRTP encryption and send, the
// server's whole path, and the subscriber's SRTP decryption and read, so a
// row's figure is an upper bound on what the server adds; the baseline row
// (the trivial pion forwarder) measured in the same run shows the floor.

// stampMagic marks a stamped payload, so padding-only probes or blank
// frames a server generates on its own are not mistaken for stamps.
const stampMagic = 0x4d524454 // "MRDT"

// stampLen is what a stamp takes at the end of a payload.
const stampLen = 12

// stampNow is the stamps' clock: wall-clock ns.
func stampNow() int64 { return time.Now().UnixNano() }

// stampPayload writes at (stampNow) into the last stampLen bytes of p; a
// payload too short to hold it is left alone.
func stampPayload(p []byte, at int64) {
	if len(p) < stampLen {
		return
	}
	t := p[len(p)-stampLen:]
	binary.BigEndian.PutUint32(t, stampMagic)
	binary.BigEndian.PutUint64(t[4:], uint64(at))
}

// readStamp returns the send time stamped at the end of payload p.
func readStamp(p []byte) (int64, bool) {
	if len(p) < stampLen {
		return 0, false
	}
	t := p[len(p)-stampLen:]
	if binary.BigEndian.Uint32(t) != stampMagic {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(t[4:])), true
}

// rtpPayload is the payload of an RTP packet (CSRCs, header extension and
// padding excluded), nil if the packet is malformed.
func rtpPayload(b []byte) []byte {
	n := rtpPayloadLen(b)
	if n == 0 {
		return nil
	}
	h := 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 {
		h += 4 + 4*int(binary.BigEndian.Uint16(b[h+2:h+4]))
	}
	return b[h : h+n]
}

// Delays are counted in a log-linear histogram of microseconds: exact below
// 64 µs, then 32 buckets per power of two (a bucket is at most 1/32 ≈ 3 %
// wide relative to its lower edge), up to 2^24 µs (16.8 s; anything longer
// lands in the last bucket). Recording is one atomic add, no lock and no
// allocation, so the hundreds of receive goroutines do not serialise on it,
// and the window is the difference of two snapshots like every other
// counter.
const (
	histSubBits = 5
	histSub     = 1 << histSubBits
	histMaxExp  = 24
	histBuckets = (histMaxExp-histSubBits-1)*histSub + 2*histSub
)

// delayHist is a histogram of one-way delays.
type delayHist struct {
	counts [histBuckets]atomic.Uint64
}

// histBucket is the bucket of a delay of us microseconds.
func histBucket(us uint64) int {
	if us >= 1<<histMaxExp {
		return histBuckets - 1
	}
	s := max(0, bits.Len64(us)-histSubBits-1)
	return s*histSub + int(us>>s)
}

// histUpper is the largest value (µs) that falls in bucket i.
func histUpper(i int) uint64 {
	if i < 2*histSub {
		return uint64(i)
	}
	s := i/histSub - 1
	m := uint64(i%histSub + histSub)
	return (m+1)<<s - 1
}

// record counts one delay; a negative one (impossible with one monotonic
// clock) counts as 0.
func (h *delayHist) record(d time.Duration) {
	h.counts[histBucket(uint64(max(0, d.Microseconds())))].Add(1)
}

// addTo adds the histogram's counts to sum (one snapshot over many tracks).
func (h *delayHist) addTo(sum []uint64) {
	for i := range h.counts {
		if c := h.counts[i].Load(); c != 0 {
			sum[i] += c
		}
	}
}

// delayStats are the percentiles of the delays counted between two
// snapshots a and b (b − a per bucket), in milliseconds; a percentile is the
// upper edge of the bucket holding it, so it errs high by at most 3 %. n is
// the number of delays.
func delayStats(a, b []uint64) (p50, p99, maxMs float64, n uint64) {
	if len(b) == 0 {
		return 0, 0, 0, 0
	}
	d := make([]uint64, len(b))
	for i := range b {
		d[i] = b[i]
		if i < len(a) {
			d[i] -= a[i]
		}
		n += d[i]
	}
	if n == 0 {
		return 0, 0, 0, 0
	}
	// The rank of quantile q is ceil(q·n): the smallest value at or above
	// which a share q of the delays lies.
	rank := func(q float64) uint64 { return max(1, uint64(math.Ceil(q*float64(n)))) }
	r50, r99 := rank(0.50), rank(0.99)
	var seen uint64
	p50, p99 = -1, -1
	for i, c := range d {
		if c == 0 {
			continue
		}
		seen += c
		v := float64(histUpper(i)) / 1000
		if p50 < 0 && seen >= r50 {
			p50 = v
		}
		if p99 < 0 && seen >= r99 {
			p99 = v
		}
		maxMs = v
	}
	return p50, p99, maxMs, n
}
