package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	wire "github.com/meridian-video/meridian/shared/signal"
)

// The baseline is the most trivial forwarder pion allows, run as its own
// process so the load generator measures it exactly like Meridian: the
// subset of docs/signaling.md the benchmark uses (join with any ticket
// "room/participant", publisher offer → answer, edge-initiated subscriber
// offer, trickle ICE), one webrtc.API with no interceptors (no NACK, RTCP
// reports, TWCC or congestion control), and pion's broadcast pattern: each
// published track becomes one TrackLocalStaticRTP that every subscriber PC
// adds, so a packet is read once and written to every binding under one
// lock. No control plane, no munger, no stats, no room events, no
// keyframe gating. What remains is the floor: SRTP decrypt once, SRTP
// encrypt and one UDP send per subscriber.

type baseRoom struct {
	mu     sync.Mutex
	tracks []*webrtc.TrackLocalStaticRTP
}

type baselineServer struct {
	api   *webrtc.API
	mu    sync.Mutex
	rooms map[string]*baseRoom
	up    fws.Upgrader
}

func runBaselineServer(args []string) error {
	fs := flag.NewFlagSet("baseline-server", flag.ContinueOnError)
	addr := fs.String("http", "127.0.0.1:7900", "HTTP/WebSocket listen address (GET /rtc)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	m := &webrtc.MediaEngine{}
	for _, c := range []struct {
		p webrtc.RTPCodecParameters
		k webrtc.RTPCodecType
	}{
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111}, webrtc.RTPCodecTypeAudio},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, PayloadType: 96}, webrtc.RTPCodecTypeVideo},
	} {
		if err := m.RegisterCodec(c.p, c.k); err != nil {
			return err
		}
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	s := &baselineServer{
		api:   webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(&interceptor.Registry{}), webrtc.WithSettingEngine(se)),
		rooms: map[string]*baseRoom{},
		up:    fws.Upgrader{CheckOrigin: func(*http.Request) bool { return true }},
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/rtc", s.handle)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, os.Interrupt, syscall.SIGTERM)
		<-c
		_ = srv.Close()
	}()
	fmt.Printf("baseline forwarder listening on http://%s\n", ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *baselineServer) room(id string) *baseRoom {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[id]
	if r == nil {
		r = &baseRoom{}
		s.rooms[id] = r
	}
	return r
}

// baseSession is one participant's socket.
type baseSession struct {
	s        *baselineServer
	ws       *fws.Conn
	wmu      sync.Mutex
	pid      string
	room     *baseRoom
	roomID   string
	mu       sync.Mutex
	pub, sub *webrtc.PeerConnection
	pending  map[string][]webrtc.ICECandidateInit
}

func (b *baseSession) send(typ string, data any) {
	msg, _ := wire.Marshal(typ, data)
	b.wmu.Lock()
	defer b.wmu.Unlock()
	_ = b.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_ = b.ws.WriteMessage(fws.TextMessage, msg)
}

func (b *baseSession) newPC(target string) (*webrtc.PeerConnection, error) {
	pc, err := b.s.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		var raw json.RawMessage = []byte("null")
		if c != nil {
			raw, _ = json.Marshal(c.ToJSON())
		}
		b.send(wire.TypeCandidate, wire.Candidate{Target: target, Candidate: raw})
	})
	return pc, nil
}

func (b *baseSession) flushCandidates(target string, pc *webrtc.PeerConnection) {
	b.mu.Lock()
	pend := b.pending[target]
	delete(b.pending, target)
	b.mu.Unlock()
	for _, c := range pend {
		_ = pc.AddICECandidate(c)
	}
}

func (s *baselineServer) handle(w http.ResponseWriter, r *http.Request) {
	ws, err := s.up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	b := &baseSession{s: s, ws: ws, pending: map[string][]webrtc.ICECandidateInit{}}
	defer func() {
		_ = ws.Close()
		b.mu.Lock()
		pub, sub := b.pub, b.sub
		b.mu.Unlock()
		if pub != nil {
			_ = pub.Close()
		}
		if sub != nil {
			_ = sub.Close()
		}
	}()
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		var env wire.Envelope
		if json.Unmarshal(data, &env) != nil {
			continue
		}
		switch env.Type {
		case wire.TypeJoin:
			var j wire.Join
			_ = json.Unmarshal(env.Data, &j)
			roomID, pid, ok := strings.Cut(j.Ticket, "/")
			if !ok {
				b.send(wire.TypeError, wire.Error{Code: "invalid-ticket", Message: "want room/participant"})
				return
			}
			b.pid, b.roomID, b.room = pid, roomID, s.room(roomID)
			b.send(wire.TypeJoined, wire.Joined{RoomID: roomID, ParticipantID: pid, Name: j.Name})
			b.room.mu.Lock()
			tracks := append([]*webrtc.TrackLocalStaticRTP(nil), b.room.tracks...)
			b.room.mu.Unlock()
			if len(tracks) > 0 {
				if err := b.offerSubscriber(tracks); err != nil {
					b.send(wire.TypeError, wire.Error{Code: "internal", Message: err.Error()})
					return
				}
			}
		case wire.TypeOffer:
			var d wire.SDP
			if json.Unmarshal(env.Data, &d) != nil || d.Target != wire.TargetPublisher || b.room == nil {
				continue
			}
			if err := b.answerPublisher(d.SDP); err != nil {
				b.send(wire.TypeError, wire.Error{Code: wire.CodeBadSDP, Message: err.Error()})
			}
		case wire.TypeAnswer:
			var d wire.SDP
			if json.Unmarshal(env.Data, &d) != nil || d.Target != wire.TargetSubscriber {
				continue
			}
			b.mu.Lock()
			sub := b.sub
			b.mu.Unlock()
			if sub != nil && sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: d.SDP}) == nil {
				b.flushCandidates(wire.TargetSubscriber, sub)
			}
		case wire.TypeCandidate:
			var d wire.Candidate
			var init webrtc.ICECandidateInit
			if json.Unmarshal(env.Data, &d) != nil || json.Unmarshal(d.Candidate, &init) != nil || init.Candidate == "" {
				continue
			}
			b.mu.Lock()
			pc := b.pub
			if d.Target == wire.TargetSubscriber {
				pc = b.sub
			}
			if pc == nil || pc.RemoteDescription() == nil {
				b.pending[d.Target] = append(b.pending[d.Target], init)
				b.mu.Unlock()
				continue
			}
			b.mu.Unlock()
			_ = pc.AddICECandidate(init)
		case wire.TypeLeave:
			return
		case wire.TypePing:
			b.send(wire.TypePong, struct{}{})
		}
	}
}

func (b *baseSession) answerPublisher(sdp string) error {
	pc, err := b.newPC(wire.TargetPublisher)
	if err != nil {
		return err
	}
	pc.OnTrack(func(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
		local, err := webrtc.NewTrackLocalStaticRTP(remote.Codec().RTPCodecCapability, remote.ID(), b.pid)
		if err != nil {
			return
		}
		b.room.mu.Lock()
		b.room.tracks = append(b.room.tracks, local)
		b.room.mu.Unlock()
		go drainRTCP(recv.Read)
		buf := make([]byte, 1500)
		for {
			n, _, err := remote.Read(buf)
			if err != nil {
				return
			}
			_, _ = local.Write(buf[:n])
		}
	})
	b.mu.Lock()
	b.pub = pc
	b.mu.Unlock()
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		return err
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return err
	}
	if err := pc.SetLocalDescription(ans); err != nil {
		return err
	}
	b.send(wire.TypeAnswer, wire.SDP{Target: wire.TargetPublisher, SDP: ans.SDP})
	b.flushCandidates(wire.TargetPublisher, pc)
	return nil
}

func (b *baseSession) offerSubscriber(tracks []*webrtc.TrackLocalStaticRTP) error {
	pc, err := b.newPC(wire.TargetSubscriber)
	if err != nil {
		return err
	}
	for _, t := range tracks {
		sender, err := pc.AddTrack(t)
		if err != nil {
			return err
		}
		go drainRTCP(sender.Read)
	}
	b.mu.Lock()
	b.sub = pc
	b.mu.Unlock()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		return err
	}
	b.send(wire.TypeOffer, wire.SDP{Target: wire.TargetSubscriber, SDP: offer.SDP})
	return nil
}

// drainRTCP reads and discards RTCP so pion's buffers never fill.
func drainRTCP(read func([]byte) (int, interceptor.Attributes, error)) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := read(buf); err != nil {
			return
		}
	}
}
