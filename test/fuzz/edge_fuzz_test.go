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
	addWebhookSeeds(f)
	cfg := webhooks.DefaultConfig()
	f.Fuzz(func(t *testing.T, raw string) { checkAccepted(t, &cfg, raw) })
}

// FuzzWebhookURLAllowPrivate: the same under an operator allow-list
// (--webhook-allow-private 10.20.0.0/16 crm.corp.internal *.corp.internal):
// an accepted IP literal is unrestricted or inside 10.20.0.0/16, and an
// accepted name is a public-looking domain or one the list names.
func FuzzWebhookURLAllowPrivate(f *testing.F) {
	addWebhookSeeds(f)
	for _, s := range []string{"https://10.20.3.4/hook", "https://10.21.0.1/", "https://[::ffff:10.20.0.1]/", "https://crm.corp.internal/x",
		"https://a.b.corp.internal/", "https://corp.internal/", "https://evilcorp.internal/", "https://crm.corp.internal./", "https://CRM.Corp.Internal/",
		"https://10.20.0.0/", "https://10.19.255.255/", "https://0xa140001/", "https://crm.corp.internal@10.0.0.1/"} {
		f.Add(s)
	}
	allowed := netip.MustParsePrefix("10.20.0.0/16")
	cfg := webhooks.DefaultConfig()
	cfg.AllowedNets = []netip.Prefix{allowed}
	cfg.AllowedHosts = []string{"crm.corp.internal", "*.corp.internal"}
	if err := cfg.Validate(); err != nil {
		f.Fatal(err)
	}
	for _, must := range []string{"https://10.20.3.4/hook", "https://crm.corp.internal/x", "https://a.b.corp.internal/"} {
		if err := cfg.CheckURL(must); err != nil {
			f.Fatalf("the allow-list refuses %q: %v", must, err)
		}
	}
	f.Fuzz(func(t *testing.T, raw string) { checkAccepted(t, &cfg, raw) })
}

func addWebhookSeeds(f *testing.F) {
	for _, s := range []string{"https://hooks.example.com/x", "https://10.0.0.1/", "https://[::1]/", "https://2130706433/", "http://example.com",
		"https://0x7f000001/", "https://127.1/", "https://127.0.0.0x1/", "https://a..b/", "https://exa mple.com/", "https://[fe80::1%25eth0]/"} {
		f.Add(s)
	}
}

// checkAccepted fails when cfg accepts raw although, by an independent
// reading of the URL, it is not https, has no host, is a restricted IP
// outside cfg.AllowedNets, or is a name that is neither a dotted domain
// with a non-numeric last label nor on cfg.AllowedHosts.
func checkAccepted(t *testing.T, cfg *webhooks.Config, raw string) {
	if err := cfg.CheckURL(raw); err != nil {
		return
	}
	u, err := url.Parse(raw)
	if err != nil || !strings.EqualFold(u.Scheme, "https") || u.Hostname() == "" {
		t.Fatalf("accepted %q (scheme %v, err %v)", raw, u, err)
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap()
		for _, p := range cfg.AllowedNets {
			if p.Contains(ip) {
				return
			}
		}
		if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() || ip.IsMulticast() {
			t.Fatalf("accepted a restricted address: %q", raw)
		}
		return
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	for _, h := range cfg.AllowedHosts {
		if name == h || strings.HasPrefix(h, "*.") && strings.HasSuffix(name, h[1:]) {
			return
		}
	}
	labels := strings.Split(name, ".")
	last := labels[len(labels)-1]
	if len(labels) < 2 || last == "" || strings.Trim(last, "0123456789") == "" {
		t.Fatalf("accepted host %q of %q: neither a domain name nor on the allow-list", host, raw)
	}
	if inetAton(labels) {
		t.Fatalf("accepted host %q of %q: an IPv4 address in inet_aton's notation (hex/octal parts), not a domain name", host, raw)
	}
}

// inetAton: up to four parts, each a C integer literal (decimal, 0x hex,
// 0 octal), as inet_aton and some resolvers read 127.0.0.0x1 = 127.0.0.1.
func inetAton(labels []string) bool {
	if len(labels) > 4 {
		return false
	}
	for _, l := range labels {
		digits := "0123456789"
		if h, ok := strings.CutPrefix(l, "0x"); ok {
			l, digits = h, "0123456789abcdef"
		}
		if strings.Trim(l, digits) != "" {
			return false
		}
	}
	return true
}
