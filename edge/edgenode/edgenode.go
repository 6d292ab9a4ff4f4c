// Package edgenode assembles an edge: SFU, signaling server, embedded TURN
// and the control-plane agent, started in dependency order and closed in
// reverse. `meridian edge` runs it behind its own HTTP listener; `meridian
// dev` mounts its routes on the control plane's listener.
package edgenode

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meridian-video/meridian/edge/agent"
	"github.com/meridian-video/meridian/edge/cascade"
	"github.com/meridian-video/meridian/edge/egress"
	"github.com/meridian-video/meridian/edge/gossip"
	"github.com/meridian-video/meridian/edge/sfu"
	"github.com/meridian-video/meridian/edge/signal"
	"github.com/meridian-video/meridian/edge/turn"
	"github.com/meridian-video/meridian/shared/edgeapi"
	"github.com/meridian-video/meridian/shared/ids"
	wire "github.com/meridian-video/meridian/shared/signal"
	"github.com/meridian-video/meridian/shared/storage"
	"github.com/meridian-video/meridian/shared/tlsutil"
)

// Config configures an edge.
type Config struct {
	// Clock is this machine's clock (nil: time.Now); tests set one that is
	// off. The SFU's housekeeping runs on it; tickets and the times the
	// edge reports (events, stats) use it corrected to the control plane's
	// when it is measurably off (agent.ControlNow).
	Clock func() time.Time

	EdgeID      string
	Region      string
	ControlURLs []string
	EdgeToken   string
	// HTTPListen is the edge's own listener; empty when routes are mounted
	// on another app (dev mode).
	HTTPListen string
	// HTTPListener, when set, is used instead of listening on HTTPListen:
	// a socket bound before the config was written (tests bind port 0, so
	// PublicURL can name the port without a window in which another
	// process takes it). The node closes it.
	HTTPListener net.Listener
	// PublicURL is how clients and the control plane reach this edge's HTTP
	// (http://host:port); the signaling URL is derived from it.
	PublicURL      string
	AllowedOrigins []string
	Capacity       int
	SFU            sfu.Config
	// TURN is started when EnableTURN is set; its Secret is replaced by the
	// control plane's at registration.
	EnableTURN bool
	TURN       turn.Config
	TURNTTL    time.Duration
	Logger     *slog.Logger
	Registry   prometheus.Registerer
	// Gatherer serves /metrics on the edge's own listener (usually the same
	// registry as Registry); nil serves none.
	Gatherer prometheus.Gatherer
	// EventLinger is how long presence and quality events may wait to
	// share a signaling socket's write (signal.Config.EventLinger): 0 keeps
	// the default (25 ms), a negative value writes each at once.
	EventLinger time.Duration
	// StatsEvery is how often summaries go to the control plane (10 s).
	StatsEvery     time.Duration
	HeartbeatEvery time.Duration
	// Latitude and Longitude place the edge more precisely than its region
	// (both 0: the region's coordinates).
	Latitude, Longitude float64
	// IdentityKey is the edge's Ed25519 key for cascade legs; nil generates
	// one (a restarted edge registers its new public key).
	IdentityKey ed25519.PrivateKey
	// Gossip, when GossipEnabled, joins the region's memberlist pool; its
	// NodeID, Region, Meta and Logger are filled in.
	GossipEnabled bool
	Gossip        gossip.Config
	// Cascade adjusts the cascade manager's timings (tests); may be nil.
	Cascade func(*cascade.Config)
	// DrainTimeout bounds a drain: participants still here are disconnected
	// then (default 2 min).
	DrainTimeout time.Duration

	// InternalURL is where the control plane and other edges reach this
	// edge (its /internal/ routes and cascade socket); default PublicURL.
	InternalURL string
	// TLSCert, when set, serves the edge's own listener over TLS (1.2+)
	// with this certificate, reloaded when its files change.
	TLSCert *tlsutil.KeyPair
	// Egress runs recordings, RTMP out and HLS here (off without WorkDir).
	Egress EgressConfig

	// MTLS is the edge's cluster identity: the listener serves TLS (the
	// node certificate to clients dialing a name it holds, TLSCert to the
	// others), /internal/ routes require a client certificate from the
	// cluster CA, and calls to the control plane and to other edges'
	// cascade sockets present the edge certificate and trust only the CA.
	MTLS *tlsutil.Cluster
}

// Node is a running edge.
type Node struct {
	cfg       Config
	log       *slog.Logger
	sfu       *sfu.SFU
	sig       *signal.Server
	sigReady  atomic.Pointer[signal.Server] // read by TURN's allocation hook
	turn      *turn.Server
	agent     *agent.Agent
	casc      *cascade.Manager
	pool      *gossip.Pool
	ticketKey atomic.Pointer[ed25519.PublicKey]
	app       *fiber.App
	ln        net.Listener
	closeOnce sync.Once

	crashed  bool // Crash: skip the goodbyes
	draining atomic.Bool
	drainMu  sync.Mutex
	drained  chan struct{} // closed when the running drain finished

	// bg runs short control-plane calls (peer fetches) owned by the node.
	bgCtx    context.Context
	bgCancel context.CancelFunc
	bg       sync.WaitGroup

	egress     *egress.Runner // nil: egress off (egressOff says why)
	egressOff  string
	egRooms    *roomEgress      // the rooms' recording/streaming state by this edge's jobs
	localFiles []*storage.Local // served at edgeapi.EgressFilesPrefix

	turnMu       sync.Mutex
	turnReported map[string]time.Time // room/participant -> last turn-relay report

	registered atomic.Bool // this process has registered once
}

// New builds the edge (nothing is connected to the control plane yet).
func New(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.EdgeID == "" || cfg.Region == "" || cfg.PublicURL == "" {
		return nil, errors.New("edgenode: EdgeID, Region and PublicURL are required")
	}
	if cfg.Capacity <= 0 {
		cfg.Capacity = 500
	}
	if cfg.TURNTTL <= 0 {
		cfg.TURNTTL = 12 * time.Hour
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 2 * time.Minute
	}
	if cfg.InternalURL == "" {
		cfg.InternalURL = cfg.PublicURL
	}
	var clientTLS *tls.Config
	if cfg.MTLS != nil {
		clientTLS = cfg.MTLS.ClientConfig()
	}
	if cfg.IdentityKey == nil {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		cfg.IdentityKey = k
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("edge", cfg.EdgeID), turnReported: map[string]time.Time{}}
	n.bgCtx, n.bgCancel = context.WithCancel(context.Background())
	cfg.SFU.Logger = n.log
	if cfg.SFU.Now == nil {
		cfg.SFU.Now = cfg.Clock // the machine's clock, for its housekeeping
	}
	media, err := sfu.New(cfg.SFU)
	if err != nil {
		return nil, err
	}
	n.sfu = media
	if cfg.Registry != nil {
		if err := cfg.Registry.Register(media.Collector()); err != nil {
			media.Close()
			return nil, fmt.Errorf("register sfu metrics: %w", err)
		}
	}
	if cfg.EnableTURN {
		tc := cfg.TURN
		if tc.Secret == "" {
			// Nothing authenticates until the control plane's secret arrives.
			var b [24]byte
			_, _ = rand.Read(b[:])
			tc.Secret = hex.EncodeToString(b[:])
		}
		tc.Logger = n.log
		tc.Registerer = cfg.Registry
		if tc.AllowParticipant == nil {
			// Relays only for participants admitted on this edge: their ticket
			// named this edge, so the room's pin policy allowed it.
			tc.AllowParticipant = func(pid ids.ParticipantID) bool {
				sig := n.sigReady.Load()
				return sig != nil && sig.HasParticipant(string(pid))
			}
		}
		if tc.OnRelay == nil {
			// The session audit lists TURN when it really relays.
			tc.OnRelay = func(pid ids.ParticipantID) {
				if sig := n.sigReady.Load(); sig != nil {
					n.reportTURN(sig, string(pid))
				}
			}
		}
		ts, err := turn.New(tc)
		if err != nil {
			media.Close()
			return nil, fmt.Errorf("turn: %w", err)
		}
		n.turn = ts
	}
	if cfg.GossipEnabled {
		gc := cfg.Gossip
		gc.NodeID, gc.Region = cfg.EdgeID, cfg.Region
		gc.Logger = n.log
		if gc.Registerer == nil {
			gc.Registerer = cfg.Registry
		}
		// The exact load: the pool coarsens it and limits how often it is
		// re-broadcast (edge/gossip/load.go).
		gc.Meta = func() gossip.Meta {
			return gossip.Meta{ID: cfg.EdgeID, Region: cfg.Region, InternalURL: cfg.InternalURL, Capacity: cfg.Capacity, Load: media.Load(), Draining: n.draining.Load()}
		}
		pool, err := gossip.New(gc)
		if err != nil {
			n.closeParts()
			return nil, fmt.Errorf("gossip: %w", err)
		}
		n.pool = pool
	}
	internalToken := cfg.EdgeToken
	sc := signal.DefaultConfig()
	sc.EdgeID, sc.Region, sc.AllowedOrigins, sc.InternalToken = cfg.EdgeID, cfg.Region, cfg.AllowedOrigins, internalToken
	sc.TicketKey = func() ed25519.PublicKey {
		if p := n.ticketKey.Load(); p != nil {
			return *p
		}
		return nil
	}
	sc.ICEServers = n.iceServers
	sc.Logger, sc.Registerer = n.log, cfg.Registry
	switch {
	case cfg.EventLinger < 0:
		sc.EventLinger = 0
	case cfg.EventLinger > 0:
		sc.EventLinger = cfg.EventLinger
	}
	n.agent, err = agent.New(agent.Config{ControlURLs: cfg.ControlURLs, EdgeToken: cfg.EdgeToken, Register: n.registration(),
		Load: media.Load, Heartbeat: n.heartbeat, OnHeartbeatReply: n.onHeartbeatReply, Resync: n.resync,
		Stats: n.participantStats, Legs: n.legStats, OnRegistered: n.onRegistered, Logger: cfg.Logger, // the agent names the edge itself
		StatsEvery: cfg.StatsEvery, HeartbeatEvery: cfg.HeartbeatEvery, TLSConfig: clientTLS, Now: cfg.Clock})
	if err != nil {
		n.closeParts()
		return nil, err
	}
	if cfg.Registry != nil {
		clock := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "meridian_edge_clock_offset_seconds",
			Help: "How far this edge's clock is ahead of the control plane's (negative: behind), from heartbeat replies; 0 until measured."},
			func() float64 { off, _ := n.agent.ClockOffset(); return off.Seconds() })
		if err := cfg.Registry.Register(clock); err != nil {
			n.closeParts()
			return nil, fmt.Errorf("register clock metric: %w", err)
		}
	}
	sc.Reporter = n.agent
	sc.Now = n.agent.ControlNow
	n.startEgress()
	sc.Admit = n.admit
	sc.Seat = n.agent.Seat
	n.sig, err = signal.New(sc, media)
	if err != nil {
		n.closeParts()
		return nil, err
	}
	cc := cascade.DefaultConfig()
	cc.EdgeID, cc.Region, cc.Key = cfg.EdgeID, cfg.Region, cfg.IdentityKey
	cc.TicketKey = sc.TicketKey
	cc.SFU, cc.Members = media, n.sig
	cc.Report = n.agent.Report
	cc.Now = n.agent.ControlNow
	cc.RefreshPeers = func(roomID string) { n.fetchPeers(roomID, false) }
	cc.Logger, cc.Registerer = n.log, cfg.Registry
	cc.TLSClientConfig = clientTLS
	if cfg.Cascade != nil {
		cfg.Cascade(&cc)
	}
	n.casc, err = cascade.New(cc)
	if err != nil {
		n.closeParts()
		return nil, err
	}
	n.sig.SetCascade(n.casc)
	n.sigReady.Store(n.sig)
	return n, nil
}

func (n *Node) registration() edgeapi.Register {
	r := edgeapi.Register{EdgeID: n.cfg.EdgeID, Region: n.cfg.Region, SignalURL: wsURL(n.cfg.PublicURL) + "/rtc", InternalURL: n.cfg.InternalURL,
		Capacity: n.cfg.Capacity, Version: "meridian", Latitude: n.cfg.Latitude, Longitude: n.cfg.Longitude,
		PublicKey: n.cfg.IdentityKey.Public().(ed25519.PublicKey)}
	if n.pool != nil {
		r.GossipAddr = n.pool.LocalAddr()
	}
	if n.turn != nil {
		for _, s := range n.turn.ICEServers("probe", time.Now(), time.Minute) {
			if len(s.URLs) > 0 && len(s.URLs[0]) > 5 && s.URLs[0][:5] == "stun:" {
				r.STUNURLs = append(r.STUNURLs, s.URLs...)
			} else {
				r.TURNURLs = append(r.TURNURLs, s.URLs...)
			}
		}
	}
	return r
}

func wsURL(httpURL string) string {
	switch {
	case len(httpURL) > 8 && httpURL[:8] == "https://":
		return "wss://" + httpURL[8:]
	case len(httpURL) > 7 && httpURL[:7] == "http://":
		return "ws://" + httpURL[7:]
	}
	return httpURL
}

func (n *Node) onRegistered(r edgeapi.RegisterReply) {
	// Before the agent reports again who is here (a re-registration): a
	// participant of a room closed while this edge was cut off is not
	// reported into a new session.
	n.applyMissed(r.Missed)
	if n.registered.CompareAndSwap(false, true) {
		n.settleRecorded(r)
	}
	if len(r.TicketPublicKey) == ed25519.PublicKeySize {
		k := ed25519.PublicKey(r.TicketPublicKey)
		n.ticketKey.Store(&k)
	}
	if n.turn != nil && r.TURNSecret != "" {
		if err := n.turn.SetSecret(r.TURNSecret); err != nil {
			n.log.Error("control plane sent an unusable TURN secret", "err", err)
		}
	}
	if n.pool != nil && len(r.GossipSeeds) > 0 {
		if err := n.pool.SetSeeds(r.GossipSeeds); err != nil {
			n.log.Warn("gossip seeds from the control plane refused", "err", err)
		}
	}
}

func (n *Node) iceServers(participantID string) []wire.ICEServer {
	if n.turn == nil {
		return nil
	}
	return n.turn.ICEServers(participantID, time.Now(), n.cfg.TURNTTL)
}

// Mount adds the edge's routes (GET /rtc, /internal/v1/rooms/*, the
// cascade socket, drain, the egress calls and its public HLS and file
// routes) to app.
func (n *Node) Mount(app fiber.Router) {
	n.mountEgress(app) // before signalling: it sees a room's close first
	n.sig.Register(app)
	n.casc.Register(app)
	app.Post("/internal/v1/rooms/peers", n.checkInternal, n.handlePeers)
	app.Post("/internal/v1/drain", n.checkInternal, n.handleDrain)
}

// Start connects to the control plane and, if configured, listens.
func (n *Node) Start() error {
	if n.cfg.HTTPListen != "" || n.cfg.HTTPListener != nil {
		ln := n.cfg.HTTPListener
		if ln == nil {
			var err error
			if ln, err = net.Listen("tcp", n.cfg.HTTPListen); err != nil {
				return err
			}
		}
		if n.cfg.TLSCert != nil || n.cfg.MTLS != nil {
			ln = tls.NewListener(ln, tlsutil.ListenerConfig(n.cfg.TLSCert, n.cfg.MTLS))
		}
		n.ln = ln
		n.app = fiber.New(fiber.Config{DisableStartupMessage: true})
		if n.cfg.MTLS != nil {
			// /internal/ (control-plane pushes, drain, cascade legs) needs a
			// client certificate from the cluster CA, besides its token or ticket.
			srv := n.app.Server()
			srv.Handler = tlsutil.RequireClientCert(srv.Handler)
		}
		n.app.Get("/healthz", func(c *fiber.Ctx) error {
			if n.ticketKey.Load() == nil {
				return c.Status(503).JSON(fiber.Map{"status": "waiting for registration"})
			}
			return c.JSON(fiber.Map{"status": "ok", "edge": n.cfg.EdgeID})
		})
		if n.cfg.Gatherer != nil {
			n.app.Get("/metrics", adaptor.HTTPHandler(promhttp.HandlerFor(n.cfg.Gatherer, promhttp.HandlerOpts{})))
		}
		n.Mount(n.app)
		go func() {
			if err := n.app.Listener(ln); err != nil {
				n.log.Error("edge http server stopped", "err", err)
			}
		}()
	}
	n.agent.Start()
	if n.pool != nil {
		n.bg.Add(1)
		go func() {
			defer n.bg.Done()
			n.watchPool()
		}()
	}
	return nil
}

// Registered is closed once the control plane accepted the edge.
func (n *Node) Registered() <-chan struct{} { return n.agent.Registered() }

// SFU exposes the media router (tests, benchmarks).
func (n *Node) SFU() *sfu.SFU { return n.sfu }

// TURN exposes the TURN server (nil when disabled).
func (n *Node) TURN() *turn.Server { return n.turn }

// Close stops signaling, reports, then media. Idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		if n.app != nil {
			_ = n.app.ShutdownWithTimeout(5 * time.Second)
		}
		n.closeParts()
	})
	return nil
}

// Crash stops the edge abruptly, as kill -9 would look to everyone else:
// no drain, no gossip leave, no last reports to the control plane (tests).
func (n *Node) Crash() {
	n.closeOnce.Do(func() {
		if n.agent != nil {
			n.agent.Kill()
		}
		n.crashed = true
		if n.app != nil {
			_ = n.app.ShutdownWithTimeout(time.Second)
		}
		n.closeParts()
	})
}

func (n *Node) closeParts() {
	// Jobs finish first, while their media and the agent (which delivers
	// their last statuses) still run.
	bound := n.cfg.DrainTimeout
	if n.crashed {
		bound = time.Second
	}
	n.stopEgress(bound)
	if n.bgCancel != nil {
		n.bgCancel()
	}
	if n.sig != nil {
		_ = n.sig.Close()
	}
	if n.casc != nil {
		_ = n.casc.Close()
	}
	if n.pool != nil {
		if !n.crashed {
			// Tell the region we are going (peers report "left", not "dead").
			_ = n.pool.Leave(2 * time.Second)
		}
		_ = n.pool.Close()
	}
	n.bg.Wait()
	if n.agent != nil {
		_ = n.agent.Close()
	}
	if n.turn != nil {
		_ = n.turn.Close()
	}
	if n.sfu != nil {
		_ = n.sfu.Close()
	}
}

// participantStats are the SFU's summaries stamped by agent.ControlNow: the SFU
// keeps the machine's clock for its own housekeeping.
func (n *Node) participantStats() []edgeapi.ParticipantStats {
	st := n.sfu.Stats()
	now := n.agent.ControlNow().UTC()
	for i := range st {
		st[i].Time = now
	}
	return st
}
