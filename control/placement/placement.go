// Package placement keeps the edge registry (replicated records plus live
// load from heartbeats), chooses edges for joins under pin policies, signs
// join tickets, turns edge reports into replicated session changes, and
// sends commands to edges.
package placement

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/meridian-video/meridian/control/api"
	"github.com/meridian-video/meridian/control/cluster"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/geo"
	"github.com/meridian-video/meridian/shared/edgeapi"
	"github.com/meridian-video/meridian/shared/ids"
	"github.com/meridian-video/meridian/shared/ticket"
	"github.com/meridian-video/meridian/shared/turncred"
)

// Secrets is what placement needs from the cluster secrets.
type Secrets struct {
	TicketKey  ed25519.PrivateKey
	TicketPub  ed25519.PublicKey
	TURNSecret string
}

// Config configures placement.
type Config struct {
	EdgeToken      string                   // edges authenticate with it
	ClusterToken   string                   // control nodes forwarding edge reports to the leader
	Secrets        func() (*Secrets, error) // opened lazily: they appear after the first leader
	Catalog        *geo.Catalog
	HeartbeatEvery time.Duration
	DownAfter      time.Duration // no heartbeat for this long: edge is down
	TicketTTL      time.Duration
	TURNTTL        time.Duration
	MaxCandidates  int
	Now            func() time.Time
	Rand           io.Reader
	Logger         *slog.Logger
	HTTPClient     *http.Client
}

// DefaultConfig returns production defaults.
func DefaultConfig() Config {
	return Config{HeartbeatEvery: 2 * time.Second, DownAfter: 15 * time.Second, TicketTTL: 60 * time.Second, TURNTTL: 12 * time.Hour, MaxCandidates: 3}
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
	case c.DownAfter <= c.HeartbeatEvery:
		return errors.New("placement: DownAfter must exceed HeartbeatEvery")
	}
	return nil
}

// Errors surfaced to clients.
var (
	ErrNoEdge = errors.New("no media edge is available")
)

// Service implements api.JoinService and api.EdgeService.
type Service struct {
	cfg  Config
	node *cluster.Node
	log  *slog.Logger

	mu   sync.Mutex
	load map[string]liveEdge // edge id -> last heartbeat
}

type liveEdge struct {
	load edgeapi.Load
	seen time.Time
}

// New builds the service.
func New(cfg Config, node *cluster.Node) (*Service, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Catalog == nil {
		cfg.Catalog = geo.NewCatalog()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	if cfg.MaxCandidates <= 0 {
		cfg.MaxCandidates = 3
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, node: node, log: cfg.Logger, load: map[string]liveEdge{}}, nil
}

var _ api.JoinService = (*Service)(nil)
var _ api.EdgeService = (*Service)(nil)

type candidate struct {
	edge  *state.Edge
	load  float64
	dist  float64
	fresh bool
}

// Join picks up to MaxCandidates edges allowed by the room's pin policy,
// least loaded first (preferring the requested region), and signs a ticket for each.
func (s *Service) Join(ctx context.Context, req api.JoinRequest) (*api.JoinResponse, error) {
	sec, err := s.cfg.Secrets()
	if err != nil {
		return nil, &api.Error{Status: fiber.StatusServiceUnavailable, Message: "cluster secrets not ready", RetryAfter: 1}
	}
	policy := geo.Policy{Regions: req.Room.Pin.Regions, Jurisdictions: req.Room.Pin.Jurisdictions}
	var edges []*state.Edge
	s.node.FSM().Read(func(st *state.Store) { edges = st.Edges() })
	now := s.cfg.Now()
	prefer := s.cfg.Catalog.Lookup(req.PreferRegion)
	var cands []candidate
	var allowedRegions []string
	seenRegion := map[string]bool{}
	for _, e := range edges {
		region := s.cfg.Catalog.Lookup(e.Region)
		if !policy.Allows(region) {
			continue
		}
		if !seenRegion[e.Region] {
			seenRegion[e.Region] = true
			allowedRegions = append(allowedRegions, e.Region)
		}
		if !e.Up {
			continue
		}
		s.mu.Lock()
		live, ok := s.load[e.ID]
		s.mu.Unlock()
		fresh := ok && now.Sub(live.seen) < s.cfg.DownAfter
		if ok && !fresh {
			continue // heard from it before, but not lately
		}
		c := candidate{edge: e, fresh: fresh, dist: math.Inf(1)}
		if e.Capacity > 0 {
			c.load = float64(live.load.Participants) / float64(e.Capacity)
			if live.load.Participants >= e.Capacity {
				continue
			}
		}
		if req.PreferRegion != "" {
			if d := geo.DistanceKm(prefer, region); !math.IsNaN(d) {
				c.dist = d
			}
			if e.Region == req.PreferRegion {
				c.dist = 0
			}
		}
		cands = append(cands, c)
	}
	if len(cands) == 0 {
		if !policy.Empty() {
			return nil, &api.Error{Status: fiber.StatusServiceUnavailable, RetryAfter: 5,
				Message: fmt.Sprintf("room %q is pinned to %s and no edge there is available; it will not fall back to another region", req.Room.RoomID, policy)}
		}
		return nil, &api.Error{Status: fiber.StatusServiceUnavailable, Message: ErrNoEdge.Error(), RetryAfter: 5}
	}
	sort.SliceStable(cands, func(i, j int) bool {
		if cands[i].dist != cands[j].dist {
			return cands[i].dist < cands[j].dist
		}
		if cands[i].fresh != cands[j].fresh {
			return cands[i].fresh
		}
		return cands[i].load < cands[j].load
	})
	if len(cands) > s.cfg.MaxCandidates {
		cands = cands[:s.cfg.MaxCandidates]
	}
	if policy.Empty() {
		allowedRegions = nil
	}
	resp := &api.JoinResponse{RoomID: req.Room.RoomID, ParticipantID: req.ParticipantID, Name: req.Name}
	exp := now.Add(s.cfg.TicketTTL)
	for _, c := range cands {
		claims := ticket.Claims{RoomID: req.Room.RoomID, ParticipantID: req.ParticipantID, ParticipantName: req.Name, EdgeID: c.edge.ID,
			Permissions:     ticket.Permissions{Publish: req.Publish, Subscribe: req.Subscribe, Moderate: req.Moderate, AskJoin: req.AskJoin},
			MaxParticipants: req.Room.MaxParticipants, AllowedRegions: allowedRegions, IssuedAt: now.Unix(), ExpiresAt: exp.Unix()}
		tok, err := ticket.Sign(sec.TicketKey, claims)
		if err != nil {
			return nil, err
		}
		user, pass := turncred.Generate(sec.TURNSecret, req.ParticipantID, now, s.cfg.TURNTTL)
		var servers []api.ICEServer
		if len(c.edge.STUNURLs) > 0 {
			servers = append(servers, api.ICEServer{URLs: c.edge.STUNURLs})
		}
		if len(c.edge.TURNURLs) > 0 {
			servers = append(servers, api.ICEServer{URLs: c.edge.TURNURLs, Username: user, Credential: pass})
		}
		if servers == nil {
			servers = []api.ICEServer{}
		}
		resp.Edges = append(resp.Edges, api.JoinCandidate{EdgeID: c.edge.ID, Region: c.edge.Region, SignalURL: c.edge.SignalURL, ICEServers: servers,
			Ticket: tok, TicketExpiresAt: exp.UTC().Format("2006-01-02T15:04:05.000Z")})
	}
	return resp, nil
}

// Routes mounts the edge-facing routes under /internal/v1.
func (s *Service) Routes(r fiber.Router) {
	g := r.Group("/edges", s.requireEdgeToken)
	g.Post("/register", s.register)
	g.Post("/heartbeat", s.heartbeat)
	g.Post("/events", s.events)
	g.Post("/stats", s.stats)
}

func (s *Service) requireEdgeToken(c *fiber.Ctx) error {
	if s.cfg.ClusterToken != "" && constantTimeEq(c.Get(cluster.TokenHeader), s.cfg.ClusterToken) {
		return c.Next()
	}
	h := c.Get(fiber.HeaderAuthorization)
	if len(h) < 8 || h[:7] != "Bearer " || !constantTimeEq(h[7:], s.cfg.EdgeToken) {
		return &api.Error{Status: fiber.StatusUnauthorized, Message: "edge token required"}
	}
	return c.Next()
}

func decode(c *fiber.Ctx, v any) error {
	if err := json.Unmarshal(c.Body(), v); err != nil {
		return &api.Error{Status: fiber.StatusBadRequest, Message: "malformed JSON: " + err.Error()}
	}
	return nil
}

func (s *Service) register(c *fiber.Ctx) error {
	var req edgeapi.Register
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.EdgeID == "" || req.Region == "" || req.SignalURL == "" {
		return &api.Error{Status: fiber.StatusBadRequest, Message: "register needs edgeId, region and signalUrl"}
	}
	sec, err := s.cfg.Secrets()
	if err != nil {
		return &api.Error{Status: fiber.StatusServiceUnavailable, Message: "cluster secrets not ready", RetryAfter: 1}
	}
	now := s.cfg.Now().UTC()
	e := state.Edge{ID: req.EdgeID, Region: req.Region, SignalURL: req.SignalURL, InternalURL: req.InternalURL, TURNURLs: req.TURNURLs,
		STUNURLs: req.STUNURLs, Capacity: req.Capacity, Latitude: req.Latitude, Longitude: req.Longitude, Version: req.Version, RegisteredAt: now, ChangedAt: now}
	if _, _, err := s.node.Apply(c.UserContext(), state.CmdUpsertEdge, state.UpsertEdge{Edge: e}); err != nil {
		return err
	}
	s.noteHeartbeat(req.EdgeID, req.Load)
	s.forwardToLeader(c, "/internal/v1/edges/heartbeat", edgeapi.Heartbeat{EdgeID: req.EdgeID, Load: req.Load})
	s.log.Info("edge registered", "edge", req.EdgeID, "region", req.Region, "signal", req.SignalURL)
	return c.JSON(edgeapi.RegisterReply{TicketPublicKey: sec.TicketPub, TURNSecret: sec.TURNSecret, HeartbeatEvery: s.cfg.HeartbeatEvery.String()})
}

func (s *Service) noteHeartbeat(id string, load edgeapi.Load) {
	s.mu.Lock()
	s.load[id] = liveEdge{load: load, seen: s.cfg.Now()}
	s.mu.Unlock()
}

// forwardToLeader copies liveness to the leader, whose loop decides when an
// edge is down; best effort (the next heartbeat repairs a lost one).
func (s *Service) forwardToLeader(c *fiber.Ctx, path string, body any) {
	if s.node.IsLeader() || c.Get(cluster.ForwardedHeader) != "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var out json.RawMessage
	_ = s.node.ForwardHTTP(ctx, path, body, &out)
}

func (s *Service) heartbeat(c *fiber.Ctx) error {
	var hb edgeapi.Heartbeat
	if err := decode(c, &hb); err != nil {
		return err
	}
	var known, up bool
	s.node.FSM().Read(func(st *state.Store) {
		e, ok := st.Edge(hb.EdgeID)
		known, up = ok, ok && e.Up
	})
	s.noteHeartbeat(hb.EdgeID, hb.Load)
	s.forwardToLeader(c, "/internal/v1/edges/heartbeat", hb)
	// An unknown edge, or one marked down, must register again (which marks it up).
	return c.JSON(edgeapi.HeartbeatReply{Reregister: !known || !up})
}

func (s *Service) newIDs(n int) ([]string, error) { return ids.NewDocIDs(s.cfg.Rand, n) }

// events turns an edge's ordered lifecycle reports into replicated session
// changes; an event id makes a retried batch harmless.
func (s *Service) events(c *fiber.Ctx) error {
	var batch edgeapi.EventBatch
	if err := decode(c, &batch); err != nil {
		return err
	}
	var region string
	s.node.FSM().Read(func(st *state.Store) {
		if e, ok := st.Edge(batch.EdgeID); ok {
			region = e.Region
		}
	})
	for _, ev := range batch.Events {
		evIDs, err := s.newIDs(4)
		if err != nil {
			return err
		}
		var cmd any
		var t state.CommandType
		switch ev.Kind {
		case edgeapi.EventParticipantJoined:
			t, cmd = state.CmdParticipantJoin, state.ParticipantJoin{EventID: ev.ID, RoomID: ev.RoomID, ParticipantID: ev.ParticipantID, Name: ev.Name,
				EdgeID: batch.EdgeID, Region: region, At: ev.At.UTC(), NewSessionID: evIDs[0], NewDocID: evIDs[1], IDs: evIDs[2:]}
		case edgeapi.EventParticipantLeft:
			t, cmd = state.CmdParticipantLeave, state.ParticipantLeave{EventID: ev.ID, RoomID: ev.RoomID, ParticipantID: ev.ParticipantID, Reason: ev.Reason,
				At: ev.At.UTC(), IDs: evIDs[:3]}
		default:
			s.log.Warn("unknown edge event", "kind", ev.Kind, "edge", batch.EdgeID)
			continue
		}
		if _, _, err := s.node.Apply(c.UserContext(), t, cmd); err != nil {
			var se *state.Error
			if errors.As(err, &se) {
				s.log.Warn("edge event rejected", "edge", batch.EdgeID, "kind", ev.Kind, "room", ev.RoomID, "err", err)
				continue
			}
			return err
		}
	}
	return c.JSON(fiber.Map{})
}

func (s *Service) stats(c *fiber.Ctx) error {
	var batch edgeapi.StatsBatch
	if err := decode(c, &batch); err != nil {
		return err
	}
	cmd := state.AppendStats{}
	for _, ps := range batch.Stats {
		sample := state.StatsSample{ParticipantID: ps.ParticipantID, Time: ps.Time.UTC(), Quality: ps.Quality}
		for _, ts := range ps.Send {
			fill(&sample.SendAudio, &sample.SendVideo, ts)
		}
		for _, ts := range ps.Recv {
			fill(&sample.RecvAudio, &sample.RecvVideo, ts)
		}
		cmd.Samples = append(cmd.Samples, state.RoomSample{RoomID: ps.RoomID, Sample: sample})
	}
	if len(cmd.Samples) == 0 {
		return c.JSON(fiber.Map{})
	}
	if _, _, err := s.node.Apply(c.UserContext(), state.CmdAppendStats, cmd); err != nil {
		return err
	}
	return c.JSON(fiber.Map{})
}

// fill adds one track's figures to the kind's aggregate (bitrates and counts
// add up across tracks of a kind; delay figures keep the worst).
func fill(audio, video *state.MediaSample, ts edgeapi.TrackStats) {
	m := audio
	if ts.Kind == "video" {
		m = video
	}
	m.Bitrate += ts.Bitrate
	m.Packets += ts.Packets
	m.PacketsLost += ts.PacketsLost
	m.JitterMs = math.Max(m.JitterMs, ts.JitterMs)
	m.RTTMs = math.Max(m.RTTMs, ts.RTTMs)
	if ts.Height > m.Height {
		m.Width, m.Height, m.FPS = ts.Width, ts.Height, ts.FPS
	}
}

// RemoveParticipant tells the participant's edge to disconnect it.
func (s *Service) RemoveParticipant(ctx context.Context, edgeID, roomID, participantID, reason string) error {
	var e *state.Edge
	s.node.FSM().Read(func(st *state.Store) { e, _ = st.Edge(edgeID) })
	if e == nil || e.InternalURL == "" {
		return fmt.Errorf("edge %q unknown", edgeID)
	}
	return s.post(ctx, e.InternalURL+"/internal/v1/rooms/remove-participant", edgeapi.RemoveParticipant{RoomID: roomID, ParticipantID: participantID, Reason: reason})
}

// CloseRoom tells every up edge to disconnect the room's participants.
func (s *Service) CloseRoom(ctx context.Context, roomID, reason string) error {
	var edges []*state.Edge
	s.node.FSM().Read(func(st *state.Store) { edges = st.Edges() })
	var errs []error
	for _, e := range edges {
		if !e.Up || e.InternalURL == "" {
			continue
		}
		if err := s.post(ctx, e.InternalURL+"/internal/v1/rooms/close", edgeapi.CloseRoom{RoomID: roomID, Reason: reason}); err != nil {
			errs = append(errs, fmt.Errorf("edge %s: %w", e.ID, err))
		}
	}
	return errors.Join(errs...)
}

func (s *Service) post(ctx context.Context, url string, body any) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.cfg.EdgeToken)
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s: %d %s", url, resp.StatusCode, bytes.TrimSpace(msg))
	}
	return nil
}

// LivenessLoop is leader-only: it marks silent edges down and closes the
// participations that lived on them, so sessions end instead of hanging.
func (s *Service) LivenessLoop(ctx context.Context) error {
	started := s.cfg.Now()
	t := time.NewTicker(s.cfg.HeartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		now := s.cfg.Now()
		if now.Sub(started) < s.cfg.DownAfter {
			continue // a new leader first gives every edge a chance to report
		}
		var edges []*state.Edge
		s.node.FSM().Read(func(st *state.Store) { edges = st.Edges() })
		for _, e := range edges {
			if !e.Up {
				continue
			}
			s.mu.Lock()
			live, ok := s.load[e.ID]
			s.mu.Unlock()
			if ok && now.Sub(live.seen) < s.cfg.DownAfter {
				continue
			}
			s.log.Warn("edge missed heartbeats; marking down", "edge", e.ID, "region", e.Region)
			if _, _, err := s.node.Apply(ctx, state.CmdMarkEdgeDown, state.MarkEdgeDown{ID: e.ID, At: now.UTC()}); err != nil {
				return err
			}
			if err := s.closeParticipations(ctx, e.ID, now.UTC()); err != nil {
				return err
			}
		}
	}
}

func (s *Service) closeParticipations(ctx context.Context, edgeID string, at time.Time) error {
	type p struct{ room, pid string }
	var list []p
	s.node.FSM().Read(func(st *state.Store) {
		for _, ss := range st.OngoingSessions() {
			for _, sp := range ss.Participants {
				if sp.Active() && sp.EdgeID == edgeID {
					list = append(list, p{ss.RoomID, sp.ParticipantID})
				}
			}
		}
	})
	for _, x := range list {
		evIDs, err := s.newIDs(4)
		if err != nil {
			return err
		}
		if _, _, err := s.node.Apply(ctx, state.CmdParticipantLeave, state.ParticipantLeave{EventID: "edge-down-" + evIDs[3], RoomID: x.room,
			ParticipantID: x.pid, Reason: "edge-failed", At: at, IDs: evIDs[:3]}); err != nil {
			var se *state.Error
			if !errors.As(err, &se) {
				return err
			}
		}
	}
	return nil
}

func constantTimeEq(a, b string) bool {
	return len(a) == len(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
