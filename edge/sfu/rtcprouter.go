package sfu

import (
	"io"
	"math/rand/v2"
	"sync"

	"github.com/pion/transport/v5/packetio"
)

// rtcpRouter delivers the RTCP subscribers send to the forwarders it
// concerns without a reader goroutine per RTP sender. pion decrypts a
// PeerConnection's SRTCP on one goroutine and writes each packet into the
// read-stream buffer of every SSRC it names; the buffers come from the
// SettingEngine's BufferFactory. For the send side's PeerConnections the
// factory below returns, for an SSRC the edge sends on, a "buffer" whose
// Write handles the packet at once (senderRTCP). Nothing reads those
// streams any more, so the goroutine each sender needed to drain its RTCP
// (one per subscribed track per subscriber) is gone.
//
// The factory sees only (kind, SSRC), not the PeerConnection, so the SSRCs
// the edge sends on are allocated here, unique across the edge, and set on
// each transceiver (RTPTransceiverInit.SendEncodings).
type rtcpRouter struct {
	mu    sync.RWMutex
	sinks map[uint32]*senderRTCP
}

func newRTCPRouter() *rtcpRouter { return &rtcpRouter{sinks: map[uint32]*senderRTCP{}} }

// allocate picks an unused SSRC for h and routes its RTCP to it.
func (r *rtcpRouter) allocate(h *senderRTCP) uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		ssrc := rand.Uint32()
		if ssrc != 0 && r.sinks[ssrc] == nil {
			r.sinks[ssrc] = h
			h.ssrc = ssrc
			return ssrc
		}
	}
}

// release stops routing ssrc.
func (r *rtcpRouter) release(ssrc uint32) {
	r.mu.Lock()
	delete(r.sinks, ssrc)
	r.mu.Unlock()
}

// Buffer limits pion uses when there is no factory (srtp's stream_srtp.go).
const rtpBufferLimit = 1000 * 1000

// bufferFactory is the send side's SettingEngine.BufferFactory.
func (r *rtcpRouter) bufferFactory(kind packetio.BufferPacketType, ssrc uint32) io.ReadWriteCloser {
	if kind != packetio.RTCPBufferPacket {
		// Subscribers send no media on these connections; keep pion's
		// default for whatever arrives.
		b := packetio.NewBuffer()
		b.SetLimitSize(rtpBufferLimit)
		return rtpBuffer{b}
	}
	r.mu.RLock()
	h := r.sinks[ssrc]
	r.mu.RUnlock()
	// RTCP about an SSRC the edge does not send on (a client's SDES or BYE
	// about itself) is dropped: nobody would read it, and pion's default
	// buffer would hold up to 100 kB of it per SSRC for the call's life.
	return &rtcpStream{h: h, closed: make(chan struct{})}
}

// rtpBuffer adapts packetio.Buffer to io.ReadWriteCloser (as srtp does
// for its own default buffers), keeping packet attributes.
type rtpBuffer struct{ *packetio.Buffer }

func (b rtpBuffer) Read(p []byte) (int, error) {
	n, _, err := b.Buffer.Read(p, nil)
	return n, err
}

func (b rtpBuffer) Write(p []byte) (int, error) { return b.Buffer.Write(p, nil) }

func (b rtpBuffer) ReadWithAttributes(p []byte, a packetio.Attributes) (int, packetio.Attributes, error) {
	return b.Buffer.Read(p, a)
}

func (b rtpBuffer) WriteWithAttributes(p []byte, a packetio.Attributes) (int, error) {
	return b.Buffer.Write(p, a)
}

// rtcpStream is the read-stream buffer of one SSRC: writes are handled at
// once; reads wait for Close (nothing reads them).
type rtcpStream struct {
	h      *senderRTCP
	once   sync.Once
	closed chan struct{}
}

func (s *rtcpStream) Write(b []byte) (int, error) {
	if s.h != nil {
		_ = walkRTCP(b, s.h)
	}
	return len(b), nil
}

func (s *rtcpStream) Read([]byte) (int, error) {
	<-s.closed
	return 0, io.EOF
}

func (s *rtcpStream) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}
