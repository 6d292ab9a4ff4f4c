package fuzz

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/meridian-video/meridian/control/webhooks"
	"github.com/meridian-video/meridian/edge/cascade"
	"github.com/meridian-video/meridian/edge/sfu"
	"github.com/meridian-video/meridian/edge/signal"
	"github.com/meridian-video/meridian/edge/signal/signaltest"
	"github.com/meridian-video/meridian/shared/edgeapi"
	wire "github.com/meridian-video/meridian/shared/signal"
)

// FuzzSignalingFrames sends arbitrary frames on an admitted participant's
// signaling socket: the edge must never crash, and must keep answering
// ping with pong (unless the frame was a valid leave, which ends the session).
func FuzzSignalingFrames(f *testing.F) {
	for _, s := range []string{`{"type":"offer","data":{"target":"publisher","sdp":"v=0"}}`, `{"type":"mute","data":{"kind":"audio","muted":true}}`,
		`{"type":"set-layer","data":{"trackId":"x","layer":"q"}}`, `{"type":"candidate","data":{"target":"subscriber","candidate":{"candidate":"a"}}}`,
		`{"type":"mute-participant","data":{"participantId":"p","kind":"video"}}`, `{"type":"join","data":{}}`, `[]`, `{"type":1}`, "\xff"} {
		f.Add([]byte(s))
	}
	e := signaltest.StartEdge(f, signaltest.EdgeOptions{})
	var cl *signaltest.Client
	f.Fuzz(func(t *testing.T, frame []byte) {
		if cl == nil || cl.Closed() {
			if cl != nil {
				cl.Close()
			}
			cl = e.Join(t, "fuzz", "p1", nil)
		}
		if err := cl.SendText(frame); err != nil {
			return
		}
		if err := cl.Send(wire.TypePing, nil); err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		from := len(cl.Messages())
		_, err := cl.WaitFor(ctx, wire.TypePong, func(env wire.Envelope) bool { return true })
		if err != nil && !cl.Closed() {
			t.Fatalf("after %q the edge stopped answering: %v (%d new frames)", frame, err, len(cl.Messages())-from)
		}
	})
}

// FuzzCascadeHello sends arbitrary hello frames to an edge's cascade
// endpoint: without a control-signed ticket and the named edge's key
// nothing may ever be welcomed, and the edge must not crash.
func FuzzCascadeHello(f *testing.F) {
	f.Add([]byte(`{"type":"hello","data":{"ticket":"a.b","roomId":"r","edgeId":"e","nonce":"n","proof":"AAAA"}}`))
	f.Add([]byte(`{"type":"hello","data":{}}`))
	f.Add([]byte(`{"type":"answer","data":{"sdp":"x"}}`))
	addr := startCascadeEdge(f)
	f.Fuzz(func(t *testing.T, frame []byte) {
		ws, _, err := fws.DefaultDialer.Dial("ws://"+addr+edgeapi.CascadePath, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		var env wire.Envelope
		if err := ws.ReadJSON(&env); err != nil || env.Type != edgeapi.CascadeChallenge {
			t.Fatalf("challenge: %v %+v", err, env)
		}
		if err := ws.WriteMessage(fws.TextMessage, frame); err != nil {
			return
		}
		if err := ws.ReadJSON(&env); err == nil && env.Type == edgeapi.CascadeWelcome {
			t.Fatalf("welcomed after %q", frame)
		}
	})
}

func startCascadeEdge(tb testing.TB) string {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	sc := sfu.DefaultConfig()
	sc.Logger = quiet
	media, err := sfu.New(sc)
	if err != nil {
		tb.Fatal(err)
	}
	ctlPub, _, _ := ed25519.GenerateKey(rand.Reader)
	cfg := signal.DefaultConfig()
	cfg.EdgeID, cfg.Region, cfg.InternalToken, cfg.Logger = "fuzz-edge", "eu-west", "internal", quiet
	cfg.AllowedOrigins = []string{"*"}
	cfg.TicketKey = func() ed25519.PublicKey { return ctlPub }
	sig, err := signal.New(cfg, media)
	if err != nil {
		tb.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	cc := cascade.DefaultConfig()
	cc.EdgeID, cc.Region, cc.Key, cc.SFU, cc.Members, cc.Logger = "fuzz-edge", "eu-west", key, media, sig, quiet
	cc.TicketKey = cfg.TicketKey
	m, err := cascade.New(cc)
	if err != nil {
		tb.Fatal(err)
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	m.Register(app)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	tb.Cleanup(func() {
		_ = m.Close()
		_ = app.ShutdownWithTimeout(2 * time.Second)
		_ = sig.Close()
		_ = media.Close()
	})
	return ln.Addr().String()
}

// FuzzWebhookURL: whatever CheckURL accepts under the default policy is an
// https URL whose host is a domain name or an unrestricted IP address.
func FuzzWebhookURL(f *testing.F) {
	for _, s := range []string{"https://hooks.example.com/x", "https://10.0.0.1/", "https://[::1]/", "https://2130706433/", "http://example.com",
		"https://0x7f000001/", "https://127.1/", "https://a..b/", "https://exa mple.com/", "https://[fe80::1%25eth0]/"} {
		f.Add(s)
	}
	cfg := webhooks.DefaultConfig()
	f.Fuzz(func(t *testing.T, raw string) {
		if err := cfg.CheckURL(raw); err != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil || !strings.EqualFold(u.Scheme, "https") || u.Hostname() == "" {
			t.Fatalf("accepted %q (scheme %v, err %v)", raw, u, err)
		}
		if ip, err := netip.ParseAddr(u.Hostname()); err == nil {
			ip = ip.Unmap()
			if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() || ip.IsMulticast() {
				t.Fatalf("accepted a restricted address: %q", raw)
			}
		}
	})
}
