package egress

import (
	"encoding/binary"
	"errors"
	"io"
	"time"
)

// The edge writes what it receives without transcoding into two simple
// containers that carry a timestamp per frame, so ffmpeg (decoders of the
// composition, the final remux of participant and track recordings) sees
// each frame at its place on the job's timeline:
//
//   - IVF for video (VP8, or H.264 access units in Annex-B form), time base
//     1/90000;
//   - Ogg for Opus, one packet per page, granule positions at 48 kHz.
//
// Timestamps are durations since the job's start (see trackReader), so the
// audio and video of one participant, written to separate files, line up.

// ivfWriter writes an IVF stream.
type ivfWriter struct {
	w      io.Writer
	header bool
	fourcc string
	width  uint16
	height uint16
	frames uint32
	buf    []byte
}

func newIVFWriter(w io.Writer, fourcc string, width, height int) *ivfWriter {
	return &ivfWriter{w: w, fourcc: fourcc, width: uint16(width), height: uint16(height)}
}

const ivfTimebase = 90000

func (v *ivfWriter) writeHeader() error {
	h := make([]byte, 32)
	copy(h[0:], "DKIF")
	binary.LittleEndian.PutUint16(h[4:], 0)
	binary.LittleEndian.PutUint16(h[6:], 32)
	copy(h[8:], v.fourcc)
	binary.LittleEndian.PutUint16(h[12:], v.width)
	binary.LittleEndian.PutUint16(h[14:], v.height)
	binary.LittleEndian.PutUint32(h[16:], ivfTimebase) // rate (timebase denominator)
	binary.LittleEndian.PutUint32(h[20:], 1)           // scale (numerator)
	binary.LittleEndian.PutUint32(h[24:], 0)           // frame count: unknown while streaming
	v.header = true
	_, err := v.w.Write(h)
	return err
}

// WriteFrame writes one frame at pts.
func (v *ivfWriter) WriteFrame(frame []byte, pts time.Duration) error {
	if !v.header {
		if err := v.writeHeader(); err != nil {
			return err
		}
	}
	v.buf = v.buf[:0]
	v.buf = binary.LittleEndian.AppendUint32(v.buf, uint32(len(frame)))
	v.buf = binary.LittleEndian.AppendUint64(v.buf, uint64(durationToTicks(pts, ivfTimebase)))
	v.buf = append(v.buf, frame...)
	v.frames++
	_, err := v.w.Write(v.buf)
	return err
}

func durationToTicks(d time.Duration, rate int64) int64 {
	if d < 0 {
		d = 0
	}
	return int64(d) / int64(time.Millisecond) * rate / 1000
}

// oggOpusWriter writes an Ogg Opus stream (RFC 7845), one packet per page.
type oggOpusWriter struct {
	w        io.Writer
	serial   uint32
	seq      uint32
	started  bool
	channels uint8
	buf      []byte
}

func newOggOpusWriter(w io.Writer, serial uint32, channels int) *oggOpusWriter {
	return &oggOpusWriter{w: w, serial: serial, channels: uint8(channels)}
}

// oggChecksum is Ogg's CRC-32 (polynomial 0x04c11db7, no reflection), which
// is not the one hash/crc32 computes, so it is done here.
func oggChecksum(b []byte) uint32 {
	var crc uint32
	for _, c := range b {
		crc = (crc << 8) ^ oggCRCTable[byte(crc>>24)^c]
	}
	return crc
}

var oggCRCTable = func() (t [256]uint32) {
	for i := range t {
		r := uint32(i) << 24
		for j := 0; j < 8; j++ {
			if r&0x80000000 != 0 {
				r = (r << 1) ^ 0x04c11db7
			} else {
				r <<= 1
			}
		}
		t[i] = r
	}
	return t
}()

func (o *oggOpusWriter) page(payload []byte, headerType byte, granule uint64) error {
	if len(payload) > 255*255 {
		return errors.New("egress: ogg packet too large")
	}
	o.buf = o.buf[:0]
	o.buf = append(o.buf, 'O', 'g', 'g', 'S', 0, headerType)
	o.buf = binary.LittleEndian.AppendUint64(o.buf, granule)
	o.buf = binary.LittleEndian.AppendUint32(o.buf, o.serial)
	o.buf = binary.LittleEndian.AppendUint32(o.buf, o.seq)
	o.buf = binary.LittleEndian.AppendUint32(o.buf, 0) // checksum placeholder
	n := len(payload)
	segs := n/255 + 1
	o.buf = append(o.buf, byte(segs))
	for i := 0; i < segs-1; i++ {
		o.buf = append(o.buf, 255)
	}
	o.buf = append(o.buf, byte(n%255))
	o.buf = append(o.buf, payload...)
	binary.LittleEndian.PutUint32(o.buf[22:], oggChecksum(o.buf))
	o.seq++
	_, err := o.w.Write(o.buf)
	return err
}

func (o *oggOpusWriter) writeHeaders() error {
	head := []byte("OpusHead")
	head = append(head, 1, o.channels)
	head = binary.LittleEndian.AppendUint16(head, 0)     // pre-skip
	head = binary.LittleEndian.AppendUint32(head, 48000) // input sample rate
	head = binary.LittleEndian.AppendUint16(head, 0)     // output gain
	head = append(head, 0)                               // channel mapping family
	if err := o.page(head, 0x02, 0); err != nil {
		return err
	}
	tags := []byte("OpusTags")
	vendor := "meridian"
	tags = binary.LittleEndian.AppendUint32(tags, uint32(len(vendor)))
	tags = append(tags, vendor...)
	tags = binary.LittleEndian.AppendUint32(tags, 0)
	o.started = true
	return o.page(tags, 0, 0)
}

// WritePacket writes one Opus packet whose first sample is at pts; the
// granule position is that of its last sample.
func (o *oggOpusWriter) WritePacket(pkt []byte, pts, dur time.Duration) error {
	if !o.started {
		if err := o.writeHeaders(); err != nil {
			return err
		}
	}
	granule := durationToTicks(pts+dur, 48000)
	return o.page(pkt, 0, uint64(granule))
}

// opusDuration is the duration of an Opus packet from its TOC (RFC 6716 §3.1).
func opusDuration(pkt []byte) time.Duration {
	if len(pkt) == 0 {
		return 0
	}
	toc := pkt[0]
	var frame time.Duration
	switch cfg := toc >> 3; {
	case cfg < 12: // SILK: 10, 20, 40, 60 ms
		frame = []time.Duration{10, 20, 40, 60}[cfg&3] * time.Millisecond
	case cfg < 16: // hybrid: 10, 20 ms
		frame = []time.Duration{10, 20}[cfg&1] * time.Millisecond
	default: // CELT: 2.5, 5, 10, 20 ms
		frame = []time.Duration{2500, 5000, 10000, 20000}[cfg&3] * time.Microsecond
	}
	switch toc & 3 {
	case 0:
		return frame
	case 1, 2:
		return 2 * frame
	}
	if len(pkt) < 2 {
		return frame
	}
	return time.Duration(pkt[1]&0x3f) * frame
}
