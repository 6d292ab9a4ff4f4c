package signaltest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	wire "github.com/meridian-video/meridian/shared/signal"
)

// PublishOptions chooses what Publish sends.
type PublishOptions struct {
	Video bool
	Audio bool
	// Simulcast sends the video as three encodings, rids q, h and f.
	Simulcast bool
	// StreamID is the MediaStream id: "camera" (default) or "screen".
	StreamID string
	// VideoTrackID and AudioTrackID default to "video" and "audio".
	VideoTrackID string
	AudioTrackID string
	// KeyframeInterval between unrequested key frames (default 10 s, so
	// receivers depend on PLI).
	KeyframeInterval time.Duration
}

// localTrack is one published track and its generator goroutine.
type localTrack struct {
	kind   string
	id     string
	tracks []*webrtc.TrackLocalStaticRTP // one per encoding
	rids   []string
	sender *webrtc.RTPSender
	tr     *webrtc.RTPTransceiver

	keyReq [3]atomic.Bool // per encoding
	frames atomic.Int64
}

// Publish adds tracks to the publisher connection, negotiates (offer →
// answer) and starts sending synthetic media. It returns a *ProtocolError
// when the edge refuses the offer.
func (c *Client) Publish(ctx context.Context, o PublishOptions) error {
	c.publishMu.Lock()
	defer c.publishMu.Unlock()
	if o.StreamID == "" {
		o.StreamID = "camera"
	}
	if o.VideoTrackID == "" {
		o.VideoTrackID = "video"
	}
	if o.AudioTrackID == "" {
		o.AudioTrackID = "audio"
	}
	if o.KeyframeInterval == 0 {
		o.KeyframeInterval = 10 * time.Second
	}
	var added []*localTrack
	if o.Video {
		lt := &localTrack{kind: "video", id: o.VideoTrackID}
		rids := []string{""}
		if o.Simulcast {
			rids = []string{"q", "h", "f"}
		}
		for _, rid := range rids {
			var opts []func(*webrtc.TrackLocalStaticRTP)
			if rid != "" {
				opts = append(opts, webrtc.WithRTPStreamID(rid))
			}
			t, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, o.VideoTrackID, o.StreamID, opts...)
			if err != nil {
				return err
			}
			lt.tracks = append(lt.tracks, t)
		}
		lt.rids = rids
		added = append(added, lt)
	}
	if o.Audio {
		t, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, o.AudioTrackID, o.StreamID)
		if err != nil {
			return err
		}
		added = append(added, &localTrack{kind: "audio", id: o.AudioTrackID, tracks: []*webrtc.TrackLocalStaticRTP{t}, rids: []string{""}})
	}
	for _, lt := range added {
		tr, err := c.pub.AddTransceiverFromTrack(lt.tracks[0], webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return err
		}
		for _, t := range lt.tracks[1:] {
			if err := tr.Sender().AddEncoding(t); err != nil {
				return err
			}
		}
		lt.tr, lt.sender = tr, tr.Sender()
	}
	if err := c.negotiatePublisher(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	c.local = append(c.local, added...)
	c.mu.Unlock()
	for _, lt := range added {
		// pion delivers each simulcast encoding's RTCP on its own reader.
		for _, rid := range lt.rids {
			c.wg.Add(1)
			go c.readSenderRTCP(lt, rid)
		}
		c.wg.Add(1)
		if lt.kind == "video" {
			go c.videoLoop(lt, o.KeyframeInterval)
		} else {
			go c.audioLoop(lt)
		}
	}
	return nil
}

// negotiatePublisher runs one offer/answer on the publisher connection.
func (c *Client) negotiatePublisher(ctx context.Context) error {
	offer, err := c.pub.CreateOffer(nil)
	if err != nil {
		return err
	}
	if err := c.pub.SetLocalDescription(offer); err != nil {
		return err
	}
	from := c.mark()
	if err := c.Send(wire.TypeOffer, wire.SDP{Target: wire.TargetPublisher, SDP: offer.SDP}); err != nil {
		return err
	}
	env, err := c.waitFrom(ctx, from, "", func(e wire.Envelope) bool {
		if e.Type == wire.TypeError {
			return true
		}
		if e.Type != wire.TypeAnswer {
			return false
		}
		d, err := Decode[wire.SDP](e)
		return err == nil && d.Target == wire.TargetPublisher
	})
	if err != nil {
		return err
	}
	if env.Type == wire.TypeError {
		e, _ := Decode[wire.Error](env)
		return &ProtocolError{Code: e.Code, Message: e.Message}
	}
	d, _ := Decode[wire.SDP](env)
	if err := c.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: d.SDP}); err != nil {
		return fmt.Errorf("signaltest: publisher answer: %w", err)
	}
	c.mu.Lock()
	pend := c.pendingPub
	c.pendingPub = nil
	c.mu.Unlock()
	for _, p := range pend {
		_ = c.pub.AddICECandidate(p)
	}
	return nil
}

func (c *Client) readSenderRTCP(lt *localTrack, rid string) {
	defer c.wg.Done()
	buf := make([]byte, 1500)
	for {
		var n int
		var err error
		if rid == "" {
			n, _, err = lt.sender.Read(buf)
		} else {
			n, _, err = lt.sender.ReadSimulcast(buf, rid)
		}
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		params := lt.sender.GetParameters()
		markKey := func(ssrc uint32) {
			for i, e := range params.Encodings {
				if uint32(e.SSRC) == ssrc && i < len(lt.keyReq) {
					lt.keyReq[i].Store(true)
				}
			}
		}
		c.mu.Lock()
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.PictureLossIndication:
				c.rtcpStats.PLIs++
				markKey(p.MediaSSRC)
			case *rtcp.FullIntraRequest:
				c.rtcpStats.FIRs++
				for _, e := range p.FIR {
					markKey(e.SSRC)
				}
			case *rtcp.TransportLayerNack:
				c.rtcpStats.NACKs++
				for _, pair := range p.Nacks {
					c.rtcpStats.NACKedPackets += len(pair.PacketList())
				}
			}
		}
		c.mu.Unlock()
	}
}

func extID(params webrtc.RTPSendParameters, uri string) uint8 {
	for _, e := range params.HeaderExtensions {
		if e.URI == uri {
			return uint8(e.ID)
		}
	}
	return 0
}

func (c *Client) videoLoop(lt *localTrack, keyEvery time.Duration) {
	defer c.wg.Done()
	params := lt.sender.GetParameters()
	midID, ridID := extID(params, sdp.SDESMidURI), extID(params, sdp.SDESRTPStreamIDURI)
	mid := lt.tr.Mid()
	simulcast := len(lt.tracks) > 1
	type state struct {
		seq   uint16
		ts    uint32
		frame uint32
		layer byte
	}
	st := make([]state, len(lt.tracks))
	for i := range st {
		st[i] = state{seq: uint16(rand.Uint32()), ts: rand.Uint32(), layer: 'v'}
		if simulcast {
			st[i].layer = lt.rids[i][0]
		}
		lt.keyReq[i].Store(true)
	}
	buf := make([]byte, 0, 1500)
	tick := time.NewTicker(33 * time.Millisecond)
	defer tick.Stop()
	lastKey := time.Now()
	var n int
	for {
		select {
		case <-c.closing:
			return
		case <-tick.C:
		}
		n++
		periodic := time.Since(lastKey) >= keyEvery
		if periodic {
			lastKey = time.Now()
		}
		for i, t := range lt.tracks {
			s := &st[i]
			spec := layerSpec[s.layer]
			s.ts += 3000
			if n%spec.every != 0 {
				continue
			}
			key := lt.keyReq[i].Swap(false) || periodic
			payload := vp8Frame(buf, s.layer, s.frame, key)
			s.frame++
			pkt := rtp.Packet{Header: rtp.Header{Version: 2, Marker: true, SequenceNumber: s.seq, Timestamp: s.ts}, Payload: payload}
			s.seq++
			if simulcast && midID != 0 && ridID != 0 {
				_ = pkt.Header.SetExtension(midID, []byte(mid))
				_ = pkt.Header.SetExtension(ridID, []byte(lt.rids[i]))
			}
			if err := t.WriteRTP(&pkt); err != nil {
				c.logf("signaltest: write video: %v", err)
			}
		}
		lt.frames.Add(1)
	}
}

// SetAudioLevel sets the RFC 6464 level (0 loudest .. 127 silence) sent
// with the client's audio.
func (c *Client) SetAudioLevel(level uint8) {
	c.mu.Lock()
	c.audioLevel = level & 0x7f
	c.mu.Unlock()
}

func (c *Client) audioLoop(lt *localTrack) {
	defer c.wg.Done()
	levelID := extID(lt.sender.GetParameters(), audioLevelURI)
	seq, ts := uint16(rand.Uint32()), rand.Uint32()
	buf := make([]byte, 0, 256)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-c.closing:
			return
		case <-tick.C:
		}
		c.mu.Lock()
		level := c.audioLevel
		c.mu.Unlock()
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts}, Payload: opusFrame(buf)}
		if levelID != 0 {
			v := level
			if level < 127 {
				v |= 0x80 // voice activity
			}
			_ = pkt.Header.SetExtension(levelID, []byte{v})
		}
		seq++
		ts += 960
		if err := lt.tracks[0].WriteRTP(&pkt); err != nil {
			c.logf("signaltest: write audio: %v", err)
		}
	}
}

// LocalSSRCs returns the SSRC of each encoding of a published track (by rid;
// "" for a single encoding).
func (c *Client) LocalSSRCs(trackID string) map[string]uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]uint32{}
	for _, lt := range c.local {
		if lt.id != trackID {
			continue
		}
		for _, e := range lt.sender.GetParameters().Encodings {
			out[e.RID] = uint32(e.SSRC)
		}
	}
	return out
}
