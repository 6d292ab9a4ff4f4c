package signaltest

import (
	"encoding/binary"
)

// Synthetic VP8 frames. Each frame is one RTP packet:
//
//	VP8 payload descriptor (1 byte, S=1 PID=0)
//	VP8 frame tag (3 bytes; bit 0 of the first = 0 on key frames)
//	key frames only: start code 9d 01 2a, width, height (2 bytes LE each)
//	marker "MR", layer byte ('q', 'h', 'f' or 'v'), frame number (4 bytes BE)
//	zero padding up to the layer's size
//
// The edge's keyframe detection and resolution parsing see real VP8
// headers; the receiver reads the layer and frame number back.

// Frame sizes and rates per layer.
var layerSpec = map[byte]struct {
	size, w, h int
	every      int // send one frame every n ticks of 33 ms
}{
	'q': {size: 250, w: 320, h: 180, every: 2},
	'h': {size: 600, w: 640, h: 360, every: 1},
	'f': {size: 1100, w: 1280, h: 720, every: 1},
	'v': {size: 800, w: 960, h: 540, every: 1},
}

func vp8Frame(buf []byte, layer byte, frame uint32, key bool) []byte {
	spec := layerSpec[layer]
	b := buf[:0]
	b = append(b, 0x10) // S=1, PID=0
	if key {
		b = append(b, 0x10, 0x00, 0x00) // P=0 (key), show_frame=1
		b = append(b, 0x9d, 0x01, 0x2a)
		b = binary.LittleEndian.AppendUint16(b, uint16(spec.w))
		b = binary.LittleEndian.AppendUint16(b, uint16(spec.h))
	} else {
		b = append(b, 0x11, 0x00, 0x00) // P=1
	}
	b = append(b, 'M', 'R', layer)
	b = binary.BigEndian.AppendUint32(b, frame)
	for len(b) < spec.size {
		b = append(b, 0)
	}
	return b
}

// parseFrame reads what vp8Frame wrote.
func parseFrame(p []byte) (layer byte, frame uint32, key, ok bool) {
	if len(p) < 4 || p[0]&0x10 == 0 {
		return 0, 0, false, false
	}
	key = p[1]&0x01 == 0
	i := 4
	if key {
		i += 7
	}
	if len(p) < i+7 || p[i] != 'M' || p[i+1] != 'R' {
		return 0, 0, key, false
	}
	return p[i+2], binary.BigEndian.Uint32(p[i+3:]), key, true
}

// opusFrame is a 20 ms Opus packet (TOC: SILK WB 20 ms, mono) with filler.
func opusFrame(buf []byte) []byte {
	b := append(buf[:0], 0x48)
	for len(b) < 60 {
		b = append(b, 0xA5)
	}
	return b
}
