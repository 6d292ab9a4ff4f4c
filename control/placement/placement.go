// Package placement keeps the edge registry (replicated records plus live
// load and gossip verdicts from heartbeats), places rooms on edges under
// pin policies (home edge, spreading, far joiners; docs/multi-edge.md),
// signs join and relay tickets, tells edges their rooms' peers, turns edge
// reports into replicated session changes, and repairs placements when
// edges die.
package placement

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/meridian-video/meridian/control/api"
	"github.com/meridian-video/meridian/control/cluster"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/geo"
	"github.com/meridian-video/meridian/shared/edgeapi"
	"github.com/meridian-video/meridian/shared/ids"
	"github.com/meridian-video/meridian/shared/ticket"
)

// Secrets is what placement needs from the cluster secrets.
type Secrets struct {
	TicketKey  ed25519.PrivateKey
	TicketPub  ed25519.PublicKey
	TURNSecret string
}

// Config configures placement.
type Config struct {
	EdgeToken    string                   // edges authenticate with it
	ClusterToken string                   // control nodes forwarding edge reports to the leader
	Secrets      func() (*Secrets, error) // opened lazily: they appear after the first leader
	Catalog      *geo.Catalog
	// Locator finds where a joiner is (hints, GeoIP, default region).
	Locator *geo.Locator
	// Fences maps VideoSDK geoFence codes to pin policies.
	Fences geo.FenceTable
	// NearKm: an edge already serving the room is used for a joiner when it
	// is at most this much farther than the nearest allowed edge.
	NearKm         float64
	HeartbeatEvery time.Duration
	DownAfter      time.Duration // no heartbeat for this long: edge is down
	// RejoinGrace: the participations recorded on an edge marked down are
	// closed (participant-left, at the time it was marked down) only after
	// this long, so participants that move to another edge within it keep
	// their place in the session (0: at once).
	RejoinGrace time.Duration
	// LateAfter: an edge heard from more recently than this is running,
	// whatever its region's gossip says; a peer's suspect/dead/left report
	// counts (in placement and in the leader's verdict) only once the
	// edge's own heartbeats are this late. 0: 3 × HeartbeatEvery or half of
	// DownAfter, whichever is longer, at most DownAfter (docs/multi-edge.md,
	// "Edge liveness and load").
	LateAfter time.Duration
	TicketTTL time.Duration
	// ReserveMargin: a join reserves its edge in the room for TicketTTL plus
	// this (the client's time to connect with its ticket). A join whose
	// edge is already reserved for more than TicketTTL plus half of it
	// writes nothing (0: 30 s).
	ReserveMargin  time.Duration
	RelayTicketTTL time.Duration
	TURNTTL        time.Duration
	// RepairEvery is how often the leader drops edges without participants
	// (and expired reservations) from placements.
	RepairEvery   time.Duration
	MaxCandidates int
	Now           func() time.Time
	Rand          io.Reader
	Logger        *slog.Logger
	HTTPClient    *http.Client
	// TLSClientConfig is used for calls to edges when HTTPClient is nil
	// (with mTLS: the control node's certificate, the cluster CA as roots).
	// The plugin fills it from the control node.
	TLSClientConfig *tls.Config
}

// DefaultConfig returns production defaults.
func DefaultConfig() Config {
	return Config{HeartbeatEvery: time.Second, DownAfter: 5 * time.Second, RejoinGrace: 15 * time.Second, TicketTTL: 60 * time.Second, ReserveMargin: 30 * time.Second, RelayTicketTTL: 10 * time.Minute,
		TURNTTL: 12 * time.Hour, MaxCandidates: 3, NearKm: 1000, RepairEvery: 5 * time.Second}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.EdgeToken == "":
		return errors.New("placement: EdgeToken is required")
	case c.Secrets == nil:
		return errors.New("placement: Secrets is required")
	case c.TicketTTL <= 0 || c.TicketTTL > ticket.MaxTTL:
		return fmt.Errorf("placement: TicketTTL must be in (0, %s]", ticket.MaxTTL)
	case c.RelayTicketTTL <= 0 || c.RelayTicketTTL > ticket.RelayMaxTTL:
		return fmt.Errorf("placement: RelayTicketTTL must be in (0, %s]", ticket.RelayMaxTTL)
	case c.DownAfter <= c.HeartbeatEvery:
		return errors.New("placement: DownAfter must exceed HeartbeatEvery")
	case c.LateAfter != 0 && (c.LateAfter <= c.HeartbeatEvery || c.LateAfter > c.DownAfter):
		return errors.New("placement: LateAfter must exceed HeartbeatEvery and be at most DownAfter")
	case c.RejoinGrace < 0:
		return errors.New("placement: RejoinGrace must not be negative")
	case c.NearKm < 0:
		return errors.New("placement: NearKm must not be negative")
	}
	return nil
}

// Errors surfaced to clients.
var (
	ErrNoEdge = errors.New("no media edge is available")
)

// Service implements api.JoinService, api.EdgeService and api.NearestService.
type Service struct {
	cfg  Config
	node *cluster.Node
	log  *slog.Logger

	mu    sync.Mutex
	live  map[string]*liveEdge // edge id -> what heartbeats said
	check chan struct{}        // wakes the leader's liveness check (nil when not leading)

	pushes chan pushJob
	stop   chan struct{}
	bg     sync.WaitGroup
	once   sync.Once
}

// liveEdge is the non-replicated view of one edge: its last heartbeat and
// what its region's gossip says about its peers.
type liveEdge struct {
	load     edgeapi.Load
	seen     time.Time
	pool     []edgeapi.PoolMember // this edge's view of its region
	rooms    []edgeapi.RoomEpoch  // rooms with participants on it
	draining bool
	clockMs  *int64 // the edge's clock ahead of the control plane's, as it measured
}

// New builds the service and starts its peer pusher; Close stops it.
func New(cfg Config, node *cluster.Node) (*Service, error) {
	d := DefaultConfig()
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Catalog == nil {
		cfg.Catalog = geo.NewCatalog()
	}
	if cfg.Fences == nil {
		cfg.Fences = geo.DefaultFences()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 5 * time.Second}
		if cfg.TLSClientConfig != nil {
			t := http.DefaultTransport.(*http.Transport).Clone()
			t.TLSClientConfig, t.ForceAttemptHTTP2 = cfg.TLSClientConfig, false
			cfg.HTTPClient.Transport = t
		}
	}
	if cfg.MaxCandidates <= 0 {
		cfg.MaxCandidates = d.MaxCandidates
	}
	if cfg.RelayTicketTTL == 0 {
		cfg.RelayTicketTTL = d.RelayTicketTTL
	}
	if cfg.RepairEvery <= 0 {
		cfg.RepairEvery = d.RepairEvery
	}
	if cfg.ReserveMargin <= 0 {
		cfg.ReserveMargin = d.ReserveMargin
	}
	if cfg.Locator == nil {
		loc, err := geo.NewLocator(geo.LocatorConfig{Catalog: cfg.Catalog})
		if err != nil {
			return nil, err
		}
		cfg.Locator = loc
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.LateAfter == 0 {
		// Short heartbeat periods (tests) would make a busy moment look
		// like a dead edge: never less than half of DownAfter.
		cfg.LateAfter = min(max(3*cfg.HeartbeatEvery, cfg.DownAfter/2), cfg.DownAfter)
	}
	s := &Service{cfg: cfg, node: node, log: cfg.Logger, live: map[string]*liveEdge{}, pushes: make(chan pushJob, 1024), stop: make(chan struct{})}
	s.bg.Add(1)
	go s.pushLoop()
	return s, nil
}

// Close stops background pushes. Idempotent.
func (s *Service) Close() {
	s.once.Do(func() {
		close(s.stop)
		s.bg.Wait()
	})
}

var (
	_ api.JoinService    = (*Service)(nil)
	_ api.EdgeService    = (*Service)(nil)
	_ api.NearestService = (*Service)(nil)
)

func (s *Service) newIDs(n int) ([]string, error) { return ids.NewDocIDs(s.cfg.Rand, n) }

// policies returns every pin that applies to a room: its own pin, its
// geoFence through the operator's table, and its API key's pin. A region
// must satisfy all of them.
func (s *Service) policies(room *state.Room) ([]geo.Policy, error) {
	var ps []geo.Policy
	if !room.Pin.Empty() {
		ps = append(ps, geo.Policy{Regions: room.Pin.Regions, Jurisdictions: room.Pin.Jurisdictions})
	}
	if room.GeoFence != "" {
		p, ok := s.cfg.Fences.Policy(room.GeoFence)
		if !ok {
			// A code the API accepted but the operator's table lacks: refuse
			// rather than place the room anywhere.
			return nil, &api.Error{Status: 503, Message: fmt.Sprintf("geoFence %q has no region mapping on this deployment", room.GeoFence)}
		}
		ps = append(ps, p)
	}
	var key *state.APIKey
	s.node.FSM().Read(func(st *state.Store) { key, _ = st.APIKey(room.APIKey) })
	if key != nil && !key.Pin.Empty() {
		ps = append(ps, geo.Policy{Regions: key.Pin.Regions, Jurisdictions: key.Pin.Jurisdictions})
	}
	return ps, nil
}

func (s *Service) allowed(region string, ps []geo.Policy) bool {
	return geo.AllowedByAll(s.cfg.Catalog.Lookup(region), ps...)
}

// allowedRegions lists the regions (known to the catalog or to the edge
// registry) that every policy allows; nil when no policy applies.
func (s *Service) allowedRegions(ps []geo.Policy, edges []*state.Edge) []string {
	empty := true
	for _, p := range ps {
		if !p.Empty() {
			empty = false
		}
	}
	if empty {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	add := func(name string) {
		if !seen[name] && s.allowed(name, ps) {
			seen[name] = true
			out = append(out, name)
		}
	}
	for _, e := range edges {
		add(e.Region)
	}
	for _, p := range ps {
		for _, r := range p.Regions {
			add(r)
		}
	}
	return out
}

// pushJob is one RoomPeers update for one edge.
type pushJob struct {
	url string
	rp  edgeapi.RoomPeers
}

// pushLoop delivers placement changes to edges, a few at a time; a lost
// push is repaired by the next heartbeat (edges report their epochs).
func (s *Service) pushLoop() {
	defer s.bg.Done()
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-s.stop:
			return
		case j := <-s.pushes:
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				if err := s.post(ctx, j.url+"/internal/v1/rooms/peers", j.rp); err != nil {
					s.log.Debug("placement: peer push failed (the edge's next heartbeat repairs it)", "url", j.url, "room", j.rp.RoomID, "err", err)
				}
			}()
		}
	}
}
