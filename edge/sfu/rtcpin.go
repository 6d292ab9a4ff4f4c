package sfu

import (
	"encoding/binary"
	"errors"
)

// RTCP a subscriber sends back, read without allocating. pion's
// rtcp.Unmarshal builds a Go object per packet and one per transport-cc
// status (about 50 per feedback message); a subscriber sends feedback every
// 50-100 ms and receiver reports every second, which at a few hundred
// subscribers was as many allocations as forwarded packets. Only what the
// edge acts on is decoded; everything else is skipped.

// RTCP packet types and feedback formats (RFC 3550, 4585, 5104,
// draft-holmer-rmcat-transport-wide-cc-extensions-01).
const (
	rtcpSR    = 200
	rtcpRR    = 201
	rtcpRTPFB = 205
	rtcpPSFB  = 206

	fmtNACK = 1  // RTPFB
	fmtTWCC = 15 // RTPFB
	fmtPLI  = 1  // PSFB
	fmtFIR  = 4  // PSFB
)

var errRTCP = errors.New("sfu: malformed RTCP")

// reportBlock is one RTCP reception report block (RFC 3550 §6.4.1).
type reportBlock struct {
	ssrc         uint32
	fractionLost uint8
	totalLost    uint32
	highestSeq   uint32
	jitter       uint32
	lsr, dlsr    uint32
}

// rtcpHandler receives the parts of a compound RTCP packet the edge uses.
// Slices passed to it are only valid during the call.
type rtcpHandler interface {
	keyframeRequest(mediaSSRC uint32)
	nack(mediaSSRC uint32, pid, blp uint16)
	report(b reportBlock)
	transportCC(mediaSSRC uint32, fci []byte)
}

// walkRTCP decodes a compound RTCP packet. It stops at the first malformed
// packet (those before it have been handled).
func walkRTCP(b []byte, h rtcpHandler) error {
	for len(b) > 0 {
		if len(b) < 4 || b[0]>>6 != 2 {
			return errRTCP
		}
		count := int(b[0] & 0x1f)
		pt := b[1]
		n := (int(binary.BigEndian.Uint16(b[2:])) + 1) * 4
		if n > len(b) {
			return errRTCP
		}
		p := b[:n]
		if b[0]&0x20 != 0 { // padding: the last byte counts it
			pad := int(p[n-1])
			if pad == 0 || pad > n-4 {
				return errRTCP
			}
			p = p[:n-pad]
		}
		b = b[n:]
		switch pt {
		case rtcpSR, rtcpRR:
			off := 8
			if pt == rtcpSR {
				off = 28
			}
			for i := 0; i < count; i++ {
				if len(p) < off+24 {
					return errRTCP
				}
				r := p[off:]
				h.report(reportBlock{
					ssrc:         binary.BigEndian.Uint32(r),
					fractionLost: r[4],
					totalLost:    uint32(r[5])<<16 | uint32(r[6])<<8 | uint32(r[7]),
					highestSeq:   binary.BigEndian.Uint32(r[8:]),
					jitter:       binary.BigEndian.Uint32(r[12:]),
					lsr:          binary.BigEndian.Uint32(r[16:]),
					dlsr:         binary.BigEndian.Uint32(r[20:]),
				})
				off += 24
			}
		case rtcpRTPFB, rtcpPSFB:
			if len(p) < 12 {
				return errRTCP
			}
			media := binary.BigEndian.Uint32(p[8:])
			fci := p[12:]
			switch {
			case pt == rtcpPSFB && (count == fmtPLI):
				h.keyframeRequest(media)
			case pt == rtcpPSFB && count == fmtFIR:
				// FIR names the SSRC in each FCI entry (RFC 5104 §4.3.1).
				for ; len(fci) >= 8; fci = fci[8:] {
					h.keyframeRequest(binary.BigEndian.Uint32(fci))
				}
			case pt == rtcpRTPFB && count == fmtNACK:
				for ; len(fci) >= 4; fci = fci[4:] {
					h.nack(media, binary.BigEndian.Uint16(fci), binary.BigEndian.Uint16(fci[2:]))
				}
			case pt == rtcpRTPFB && count == fmtTWCC:
				h.transportCC(media, fci)
			}
		}
	}
	return nil
}

// twccStatus is the reception state of one packet in a transport-cc
// feedback message.
type twccStatus uint8

const (
	twccNotReceived twccStatus = iota
	twccSmallDelta
	twccLargeDelta
)

// walkTWCC decodes a transport-cc feedback FCI (the part after the media
// SSRC) and calls fn for every packet it reports, in sequence order, with
// its arrival time in µs on the receiver's clock (valid when received).
func walkTWCC(fci []byte, fn func(seq uint16, received bool, arrivalUs int64)) error {
	if len(fci) < 8 {
		return errRTCP
	}
	base := binary.BigEndian.Uint16(fci)
	count := int(binary.BigEndian.Uint16(fci[2:]))
	ref := int64(int32(binary.BigEndian.Uint32(fci[4:]))>>8) * 64000 // 24-bit signed, 64 ms units
	chunks := fci[8:]
	// First pass: how many chunk bytes precede the deltas.
	n, seen := 0, 0
	for seen < count {
		if len(chunks) < n+2 {
			return errRTCP
		}
		seen += chunkLen(binary.BigEndian.Uint16(chunks[n:]))
		n += 2
	}
	deltas := chunks[n:]
	chunks = chunks[:n]
	seq := base
	at := ref
	left := count
	for ; len(chunks) > 0 && left > 0; chunks = chunks[2:] {
		c := binary.BigEndian.Uint16(chunks)
		k := min(chunkLen(c), left)
		for i := 0; i < k; i++ {
			st := chunkSymbol(c, i)
			switch st {
			case twccSmallDelta:
				if len(deltas) < 1 {
					return errRTCP
				}
				at += int64(deltas[0]) * 250
				deltas = deltas[1:]
			case twccLargeDelta:
				if len(deltas) < 2 {
					return errRTCP
				}
				at += int64(int16(binary.BigEndian.Uint16(deltas))) * 250
				deltas = deltas[2:]
			}
			fn(seq, st == twccSmallDelta || st == twccLargeDelta, at)
			seq++
		}
		left -= k
	}
	return nil
}

// chunkLen is how many statuses a packet status chunk carries.
func chunkLen(c uint16) int {
	switch {
	case c&0x8000 == 0: // run length
		return int(c & 0x1fff)
	case c&0x4000 == 0: // status vector, 1-bit symbols
		return 14
	default: // status vector, 2-bit symbols
		return 7
	}
}

// chunkSymbol is the i-th status of a chunk.
func chunkSymbol(c uint16, i int) twccStatus {
	switch {
	case c&0x8000 == 0:
		return twccStatus(c >> 13 & 0x3)
	case c&0x4000 == 0:
		return twccStatus(c >> (13 - i) & 0x1)
	default:
		return twccStatus(c >> (12 - 2*i) & 0x3)
	}
}
