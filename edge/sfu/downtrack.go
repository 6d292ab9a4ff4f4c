package sfu

import (
	"strings"
	"sync/atomic"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// binding is what pion hands a local track once the subscriber's SDP is
// negotiated.
type binding struct {
	ssrc uint32
	pt   uint8
	w    webrtc.TrackLocalWriter
	// levelExt is the negotiated audio-level extension id (0 if none);
	// only relay forwarders write it.
	levelExt uint8
	// twccExt is the negotiated transport-cc extension id (0 if none).
	twccExt uint8
}

// DownTrack is the webrtc.TrackLocal one subscriber receives for one
// published track. Its stream id is the publisher's participant id and its
// track id the publisher's track id. It writes packets prepared by its
// Forwarder straight to the bound TrackLocalWriter.
type DownTrack struct {
	id, streamID string
	kind         webrtc.RTPCodecType
	mime         string
	b            atomic.Pointer[binding]
	onBind       func()
}

var _ webrtc.TrackLocal = (*DownTrack)(nil)

// Bind picks the publisher's codec among the negotiated ones.
func (d *DownTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	for _, c := range ctx.CodecParameters() {
		if strings.EqualFold(c.MimeType, d.mime) {
			b := &binding{ssrc: uint32(ctx.SSRC()), pt: uint8(c.PayloadType), w: ctx.WriteStream()}
			for _, e := range ctx.HeaderExtensions() {
				switch e.URI {
				case audioLevelURI:
					b.levelExt = uint8(e.ID)
				case sdp.TransportCCURI:
					b.twccExt = uint8(e.ID)
				}
			}
			d.b.Store(b)
			if d.onBind != nil {
				d.onBind()
			}
			return c, nil
		}
	}
	return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
}

// Unbind stops writing.
func (d *DownTrack) Unbind(webrtc.TrackLocalContext) error {
	d.b.Store(nil)
	return nil
}

func (d *DownTrack) ID() string                { return d.id }
func (d *DownTrack) RID() string               { return "" }
func (d *DownTrack) StreamID() string          { return d.streamID }
func (d *DownTrack) Kind() webrtc.RTPCodecType { return d.kind }

// SSRC returns the negotiated SSRC (0 before negotiation).
func (d *DownTrack) SSRC() uint32 {
	if b := d.b.Load(); b != nil {
		return b.ssrc
	}
	return 0
}
