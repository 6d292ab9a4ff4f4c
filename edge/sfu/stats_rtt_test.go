package sfu

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"

	"github.com/meridian-video/meridian/shared/edgeapi"
)

// ---- a path with delay: what a client receives arrives d late ----

// delayNet is a transport.Net whose sockets hand every received packet to
// the reader d after it arrived, in arrival order (a delay line, not a
// per-read sleep, so throughput is not limited).
type delayNet struct {
	*stdnet.Net
	d time.Duration
}

func newDelayNet(t testing.TB, d time.Duration) *delayNet {
	n, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	return &delayNet{Net: n, d: d}
}

func (n *delayNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	return newDelayConn(c, n.d), nil
}

func (n *delayNet) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := n.Net.ListenPacket(network, address)
	if err != nil {
		return nil, err
	}
	uc, ok := c.(transport.UDPConn)
	if !ok {
		return c, nil
	}
	return newDelayConn(uc, n.d), nil
}

type delayedPacket struct {
	b   []byte
	a   *net.UDPAddr
	due time.Time
	err error
}

type delayConn struct {
	transport.UDPConn
	d    time.Duration
	once sync.Once
	q    chan delayedPacket
	mu   sync.Mutex
	err  error // the socket's final error, once the pump met it
}

func newDelayConn(c transport.UDPConn, d time.Duration) *delayConn {
	return &delayConn{UDPConn: c, d: d, q: make(chan delayedPacket, 4096)}
}

func (c *delayConn) pump() {
	for {
		buf := make([]byte, 2048)
		n, a, err := c.UDPConn.ReadFromUDP(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.q <- delayedPacket{err: err}
				continue
			}
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			close(c.q)
			return
		}
		c.q <- delayedPacket{b: buf[:n], a: a, due: time.Now().Add(c.d)}
	}
}

func (c *delayConn) next(b []byte) (int, *net.UDPAddr, error) {
	c.once.Do(func() { go c.pump() })
	p, ok := <-c.q
	if !ok {
		c.mu.Lock()
		defer c.mu.Unlock()
		return 0, nil, c.err
	}
	if p.err != nil {
		return 0, nil, p.err
	}
	if w := time.Until(p.due); w > 0 {
		time.Sleep(w)
	}
	return copy(b, p.b), p.a, nil
}

func (c *delayConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, a, err := c.next(b)
	if a == nil { // no typed nil in the interface
		return n, nil, err
	}
	return n, a, err
}

func (c *delayConn) ReadFromUDP(b []byte) (int, *net.UDPAddr, error) { return c.next(b) }

func (c *delayConn) ReadMsgUDP(b, _ []byte) (int, int, int, *net.UDPAddr, error) {
	n, a, err := c.next(b)
	return n, 0, 0, a, err
}

func (c *delayConn) Read(b []byte) (int, error) {
	n, _, err := c.next(b)
	return n, err
}

// ---- a publisher client on a chosen network ----

// startPublisherOn joins id as a publisher whose pion client opens its
// sockets through n and sends VP8 (30 fps) and Opus (50 packets/s) until the
// test ends.
func startPublisherOn(t testing.TB, s *SFU, room, id string, n transport.Net) *Participant {
	t.Helper()
	sink := newTestSink()
	part, err := s.Join(room, ParticipantConfig{ID: id, CanPublish: true, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	if err := part.Start(); err != nil {
		t.Fatal(err)
	}
	co := browserLike
	co.net = n
	pc, err := clientAPI(t, co).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	video, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "camera")
	if err != nil {
		t.Fatal(err)
	}
	audio, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "camera")
	if err != nil {
		t.Fatal(err)
	}
	var senders []*webrtc.RTPSender
	for _, tr := range []*webrtc.TrackLocalStaticRTP{video, audio} {
		x, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			t.Fatal(err)
		}
		senders = append(senders, x.Sender())
	}
	negotiatePublisher(t, pc, part, sink)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, snd := range senders {
		wg.Add(1)
		go func() { // RTCP must be read for pion's interceptors to act on it
			defer wg.Done()
			buf := make([]byte, 1500)
			for {
				if _, _, err := snd.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		buf := make([]byte, 0, 1500)
		var vseq, aseq uint16
		var vts, ats uint32
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			aseq++
			ats += 960
			_ = audio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: aseq, Timestamp: ats}, Payload: make([]byte, 80)})
			if n%3 != 0 { // video at ~17 fps, a key frame every 15 frames
				continue
			}
			vts += 5400
			for j := 0; j < 2; j++ {
				pl := vp8Payload(buf, j == 0 && n%45 == 0, 0, vseq, 900)
				if j > 0 {
					pl[0] &^= 0x10
				}
				_ = video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, Marker: j == 1, SequenceNumber: vseq, Timestamp: vts}, Payload: pl})
				vseq++
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		_ = pc.Close()
		wg.Wait()
		part.Close()
	})
	return part
}

// statsOf returns the edge's snapshot of one participant.
func statsOf(s *SFU, id string) (edgeapi.ParticipantStats, bool) {
	for _, st := range s.Stats() {
		if st.ParticipantID == id {
			return st, true
		}
	}
	return edgeapi.ParticipantStats{}, false
}

// TestParticipantStatsMeasureRoundTripBothDirections: with every packet
// each client receives held back 40 ms, the edge reports a round trip of
// about that for a publisher (on its publisher connection, which carries no
// media towards the client and so no receiver reports: ICE consent checks)
// and for a subscriber (from the LSR/DLSR of its receiver reports, on every
// track it receives; from its subscriber connection's consent checks when
// its reports carry no LSR), and a score for each.
func TestParticipantStatsMeasureRoundTripBothDirections(t *testing.T) {
	const delay = 40 * time.Millisecond
	s := newTestSFU(t, testConfig())
	startPublisherOn(t, s, "room", "pub", newDelayNet(t, delay))
	o := browserLike
	o.net = newDelayNet(t, delay)
	sub := startSubscriber(t, s, "room", "sub", o)
	// A client that never reads RTCP (pion's default) sends receiver
	// reports without an LSR: its round trip comes from the consent checks
	// of its subscriber connection.
	o2 := browserLike
	o2.net = newDelayNet(t, delay)
	startSubscriber(t, s, "room", "quiet", o2)

	// A browser reads the edge's sender reports (their LSR/DLSR go back in
	// its receiver reports); pion's report interceptor sees them only when
	// the application reads RTCP from the receiver.
	draining := map[*webrtc.RTPReceiver]bool{}
	drain := func() {
		for _, r := range sub.pc.GetReceivers() {
			if r.Track() == nil || draining[r] {
				continue
			}
			draining[r] = true
			go func() {
				for {
					if _, _, err := r.ReadRTCP(); err != nil {
						return
					}
				}
			}()
		}
	}

	minMs, maxMs := float64(delay.Milliseconds())*0.9, 2000.0
	eventually(t, 30*time.Second, func() string {
		drain()
		pub, ok := statsOf(s, "pub")
		if !ok || len(pub.Send) != 2 {
			return fmt.Sprintf("publisher stats %+v", pub)
		}
		for _, ts := range pub.Send {
			if ts.Packets == 0 || ts.Bitrate == 0 {
				return fmt.Sprintf("publisher sends no %s yet: %+v", ts.Kind, ts)
			}
			if ts.RTTMs < minMs || ts.RTTMs > maxMs {
				return fmt.Sprintf("publisher %s RTT %.2f ms, want %.0f..%.0f", ts.Kind, ts.RTTMs, minMs, maxMs)
			}
		}
		for _, id := range []string{"sub", "quiet"} {
			rcv, ok := statsOf(s, id)
			if !ok || len(rcv.Recv) != 2 {
				return fmt.Sprintf("%s stats %+v", id, rcv)
			}
			for _, ts := range rcv.Recv {
				if ts.Packets == 0 {
					return fmt.Sprintf("%s receives no %s yet", id, ts.Kind)
				}
				if ts.RTTMs < minMs || ts.RTTMs > maxMs {
					return fmt.Sprintf("%s %s RTT %.2f ms, want %.0f..%.0f", id, ts.Kind, ts.RTTMs, minMs, maxMs)
				}
			}
			if rcv.Quality <= 0 {
				return fmt.Sprintf("%s score %v", id, rcv.Quality)
			}
		}
		// The subscriber's round trip is its receiver reports' (not the
		// consent checks' standing in for them).
		for _, f := range sub.part.sub.forwarders() {
			if rtt := f.stats.rtt.Load() * 1000; rtt < minMs || rtt > maxMs {
				return fmt.Sprintf("receiver reports of %s timed %.2f ms", f.track.info.Kind, rtt)
			}
		}
		if pub.Quality <= 0 {
			return fmt.Sprintf("publisher score %v", pub.Quality)
		}
		return ""
	})
	pub, _ := statsOf(s, "pub")
	rcv, _ := statsOf(s, "sub")
	quiet, _ := statsOf(s, "quiet")
	t.Logf("publisher %+v", pub)
	t.Logf("subscriber %+v", rcv)
	t.Logf("subscriber without LSR %+v", quiet)
}
