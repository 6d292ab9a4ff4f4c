package turn_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
)

// A real PeerConnection pair where the offerer may only use relay
// candidates from this server: the data channel message must go through the
// TURN relay (over UDP, then over TCP) to the answerer's loopback host
// candidate, which the test config allows explicitly.
func TestWebRTCRelayOnly(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			s := startServer(t, testConfig())

			var iceServers []webrtc.ICEServer
			for _, srv := range s.ICEServers("alice", time.Now(), time.Hour) {
				var urls []string
				for _, u := range srv.URLs {
					if strings.HasPrefix(u, "turn:") && strings.HasSuffix(u, "?transport="+transport) {
						urls = append(urls, u)
					}
				}
				if len(urls) > 0 {
					iceServers = append(iceServers, webrtc.ICEServer{
						URLs: urls, Username: srv.Username, Credential: srv.Credential,
					})
				}
			}
			if len(iceServers) != 1 {
				t.Fatalf("no TURN %s URL in %+v", transport, s.ICEServers("alice", time.Now(), time.Hour))
			}

			se := webrtc.SettingEngine{}
			se.SetIncludeLoopbackCandidate(true)
			se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
			se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
			se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeTCP4})
			se.SetRelayAcceptanceMinWait(0) // pion waits 2 s before nominating relay pairs
			se.LoggerFactory = quietPion()
			api := webrtc.NewAPI(webrtc.WithSettingEngine(se))

			offerer, err := api.NewPeerConnection(webrtc.Configuration{
				ICEServers:         iceServers,
				ICETransportPolicy: webrtc.ICETransportPolicyRelay,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = offerer.Close() }()
			answerer, err := api.NewPeerConnection(webrtc.Configuration{})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = answerer.Close() }()

			received := make(chan string, 1)
			answerer.OnDataChannel(func(dc *webrtc.DataChannel) {
				dc.OnMessage(func(msg webrtc.DataChannelMessage) {
					select {
					case received <- string(msg.Data):
					default:
					}
				})
			})
			dc, err := offerer.CreateDataChannel("chat", nil)
			if err != nil {
				t.Fatal(err)
			}
			opened := make(chan struct{})
			dc.OnOpen(func() { close(opened) })

			// Non-trickle exchange: complete gathering on each side first.
			offer, err := offerer.CreateOffer(nil)
			if err != nil {
				t.Fatal(err)
			}
			gathered := webrtc.GatheringCompletePromise(offerer)
			if err := offerer.SetLocalDescription(offer); err != nil {
				t.Fatal(err)
			}
			<-gathered
			if sdp := offerer.LocalDescription().SDP; !strings.Contains(sdp, "typ relay") || strings.Contains(sdp, "typ host") {
				t.Fatalf("offer should carry relay candidates only:\n%s", sdp)
			}
			if err := answerer.SetRemoteDescription(*offerer.LocalDescription()); err != nil {
				t.Fatal(err)
			}
			answer, err := answerer.CreateAnswer(nil)
			if err != nil {
				t.Fatal(err)
			}
			gathered = webrtc.GatheringCompletePromise(answerer)
			if err := answerer.SetLocalDescription(answer); err != nil {
				t.Fatal(err)
			}
			<-gathered
			if err := offerer.SetRemoteDescription(*answerer.LocalDescription()); err != nil {
				t.Fatal(err)
			}

			select {
			case <-opened:
			case <-time.After(15 * time.Second):
				t.Fatalf("data channel did not open (ICE %s)", offerer.ICEConnectionState())
			}
			if err := dc.SendText("hello through TURN"); err != nil {
				t.Fatal(err)
			}
			select {
			case msg := <-received:
				if msg != "hello through TURN" {
					t.Fatalf("got %q", msg)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("message not received")
			}

			pair, err := offerer.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
			if err != nil || pair == nil {
				t.Fatalf("no selected pair: %v", err)
			}
			if pair.Local.Typ != webrtc.ICECandidateTypeRelay {
				t.Fatalf("offerer's selected local candidate is %s, want relay", pair.Local.Typ)
			}
			if n := s.Allocations("alice"); n < 1 {
				t.Fatalf("server reports %d allocations for alice", n)
			}
		})
	}
}
