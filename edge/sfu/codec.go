package sfu

import "strings"

type codecKind uint8

const (
	codecOther codecKind = iota
	codecOpus
	codecVP8
	codecH264
)

func codecFromMime(mime string) codecKind {
	switch strings.ToLower(mime) {
	case "audio/opus":
		return codecOpus
	case "video/vp8":
		return codecVP8
	case "video/h264":
		return codecH264
	}
	return codecOther
}

// vp8Header returns the offset of the VP8 payload header after the payload
// descriptor (RFC 7741 §4.2) and whether this packet starts a partition-0 frame.
func vp8Header(p []byte) (int, bool) {
	if len(p) < 1 {
		return 0, false
	}
	start := p[0]&0x10 != 0 && p[0]&0x07 == 0
	i := 1
	if p[0]&0x80 != 0 { // X
		if len(p) < 2 {
			return 0, false
		}
		x := p[1]
		i = 2
		if x&0x80 != 0 { // I: picture id, 1 or 2 bytes
			if len(p) <= i {
				return 0, false
			}
			if p[i]&0x80 != 0 {
				i += 2
			} else {
				i++
			}
		}
		if x&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if x&0x30 != 0 { // T or K
			i++
		}
	}
	if len(p) <= i {
		return 0, false
	}
	return i, start
}

// isVP8Keyframe reports whether the packet starts a VP8 key frame.
func isVP8Keyframe(p []byte) bool {
	i, start := vp8Header(p)
	return start && p[i]&0x01 == 0
}

// vp8Size returns the frame size carried by a key frame's first packet.
func vp8Size(p []byte) (w, h int, ok bool) {
	i, start := vp8Header(p)
	if !start || p[i]&0x01 != 0 || len(p) < i+10 {
		return 0, 0, false
	}
	if p[i+3] != 0x9d || p[i+4] != 0x01 || p[i+5] != 0x2a {
		return 0, 0, false
	}
	w = int(uint16(p[i+6])|uint16(p[i+7])<<8) & 0x3fff
	h = int(uint16(p[i+8])|uint16(p[i+9])<<8) & 0x3fff
	return w, h, true
}

// isH264Keyframe reports whether the packet carries an IDR slice or an SPS
// (single NAL, STAP-A or the first fragment of an FU-A).
func isH264Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	switch t := p[0] & 0x1f; t {
	case 5, 7:
		return true
	case 24: // STAP-A
		for i := 1; i+2 < len(p); {
			n := int(p[i])<<8 | int(p[i+1])
			i += 2
			if i >= len(p) {
				break
			}
			if nt := p[i] & 0x1f; nt == 5 || nt == 7 {
				return true
			}
			i += n
		}
	case 28: // FU-A
		return len(p) > 1 && p[1]&0x80 != 0 && (p[1]&0x1f == 5 || p[1]&0x1f == 7)
	}
	return false
}

func isKeyframe(c codecKind, payload []byte) bool {
	switch c {
	case codecVP8:
		return isVP8Keyframe(payload)
	case codecH264:
		return isH264Keyframe(payload)
	case codecOpus, codecOther:
		return true
	}
	return true
}
