package signaltest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-video/meridian/shared/wait"

	"github.com/gofiber/fiber/v2"

	"github.com/meridian-video/meridian/edge/sfu"
	"github.com/meridian-video/meridian/edge/signal"
	"github.com/meridian-video/meridian/shared/edgeapi"
	"github.com/meridian-video/meridian/shared/ticket"
)

// Edge is an in-process edge for tests: an SFU on loopback, the signaling
// server and a fiber app on 127.0.0.1:0, with its own ticket key.
type Edge struct {
	SFU      *sfu.SFU
	Server   *signal.Server
	Reporter *Recorder
	Key      ed25519.PrivateKey
	Config   signal.Config
	Addr     string // host:port of the HTTP listener

	app *fiber.App
}

// EdgeOptions adjusts StartEdge.
type EdgeOptions struct {
	// Signal changes the signaling config before start (EdgeID "edge-test",
	// Region "test", AllowedOrigins "*" and InternalToken "internal-token"
	// are preset).
	Signal func(*signal.Config)
	// SFU changes the SFU config before start (loopback candidates, no mDNS).
	SFU func(*sfu.Config)
}

// StartEdge starts an edge and registers its shutdown with tb.Cleanup.
func StartEdge(tb testing.TB, o EdgeOptions) *Edge {
	tb.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	sc := sfu.DefaultConfig()
	sc.IncludeLoopbackCandidate = true
	sc.DisableMDNS = true
	sc.Logger = quiet
	if o.SFU != nil {
		o.SFU(&sc)
	}
	media, err := sfu.New(sc)
	if err != nil {
		tb.Fatal(err)
	}
	rec := &Recorder{}
	cfg := signal.DefaultConfig()
	cfg.EdgeID = "edge-test"
	cfg.Region = "test"
	cfg.AllowedOrigins = []string{"*"}
	cfg.InternalToken = "internal-token"
	cfg.TicketKey = func() ed25519.PublicKey { return pub }
	cfg.Reporter = rec
	cfg.Logger = quiet
	if o.Signal != nil {
		o.Signal(&cfg)
	}
	srv, err := signal.New(cfg, media)
	if err != nil {
		_ = media.Close()
		tb.Fatal(err)
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	srv.Register(app)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = app.Listener(ln)
	}()
	e := &Edge{SFU: media, Server: srv, Reporter: rec, Key: priv, Config: cfg, Addr: ln.Addr().String(), app: app}
	tb.Cleanup(func() {
		_ = srv.Close()
		_ = app.ShutdownWithTimeout(5 * time.Second)
		<-done
		_ = media.Close()
	})
	return e
}

// URL is the signaling WebSocket URL.
func (e *Edge) URL() string { return "ws://" + e.Addr + "/rtc" }

// Ticket signs a ticket for this edge: publish+subscribe in room, valid 60 s,
// unless mod changes the claims.
func (e *Edge) Ticket(tb testing.TB, room, participant string, mod func(*ticket.Claims)) string {
	tb.Helper()
	now := time.Now()
	c := ticket.Claims{
		RoomID: room, ParticipantID: participant, ParticipantName: participant, EdgeID: e.Config.EdgeID,
		Permissions: ticket.Permissions{Publish: true, Subscribe: true},
		IssuedAt:    now.Unix(), ExpiresAt: now.Add(ticket.MaxTTL).Unix(),
	}
	if mod != nil {
		mod(&c)
	}
	tok, err := ticket.Sign(e.Key, c)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// Dial connects a client to this edge and closes it at cleanup.
func (e *Edge) Dial(tb testing.TB, cfg Config) *Client {
	tb.Helper()
	cfg.URL = e.URL()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}

// Join dials and joins with a default ticket (mod adjusts it); it fails
// the test unless the client is admitted.
func (e *Edge) Join(tb testing.TB, room, participant string, mod func(*ticket.Claims)) *Client {
	tb.Helper()
	c := e.Dial(tb, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, lobby, err := c.Join(ctx, e.Ticket(tb, room, participant, mod), participant); err != nil || lobby {
		tb.Fatalf("join %s: lobby=%v err=%v", participant, lobby, err)
	}
	return c
}

// Internal POSTs to one of the edge's internal routes with the internal token.
func (e *Edge) Internal(path, body string) (int, error) {
	req, err := http.NewRequest(http.MethodPost, "http://"+e.Addr+path, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+e.Config.InternalToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// Recorder is a signal.Reporter that keeps every event.
type Recorder struct {
	mu     sync.Mutex
	events []edgeapi.Event
}

var _ signal.Reporter = (*Recorder)(nil)

func (r *Recorder) ParticipantJoined(ev edgeapi.Event) { r.add(ev) }
func (r *Recorder) ParticipantLeft(ev edgeapi.Event)   { r.add(ev) }

func (r *Recorder) add(ev edgeapi.Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

// Events returns the events so far.
func (r *Recorder) Events() []edgeapi.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]edgeapi.Event(nil), r.events...)
}

// Count counts events of kind for participant.
func (r *Recorder) Count(kind, participant string) int {
	n := 0
	for _, ev := range r.Events() {
		if ev.Kind == kind && ev.ParticipantID == participant {
			n++
		}
	}
	return n
}

// Eventually is wait.Until: poll cond until it returns "", or fail with
// its last reason.
func Eventually(tb testing.TB, timeout time.Duration, cond func() string) {
	tb.Helper()
	wait.Until(tb, timeout, cond)
}

// Reasonf formats a not-yet reason for Eventually.
func Reasonf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
