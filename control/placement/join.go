package placement

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/meridian-video/meridian/control/api"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/geo"
	"github.com/meridian-video/meridian/shared/edgeapi"
	"github.com/meridian-video/meridian/shared/ticket"
	"github.com/meridian-video/meridian/shared/turncred"
)

// candidate is an edge a joiner could use, with what placement weighs.
type candidate struct {
	edge    *state.Edge
	load    float64 // participants / capacity (0 when unknown)
	dist    float64 // km from the joiner (NaN when unknown)
	serving bool    // already serves the room
	tie     uint32  // random tie-break among equally good edges
}

// usable reports whether an edge may take joiners now, and its load.
// suspect: a region peer's gossip says the edge is suspect, dead or left.
func (s *Service) usable(e *state.Edge, now time.Time) (load float64, ok bool) {
	if !e.Up || e.Draining {
		return 0, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	participants, draining := 0, false
	if le := s.live[e.ID]; le != nil && now.Sub(le.seen) < s.cfg.DownAfter {
		participants, draining = le.load.Participants, le.draining
	} else if pm, ok := s.poolReportLocked(e.ID, now); ok {
		// This node has not heard from the edge itself (its heartbeats go
		// to another control node, or it is cut off from us): its region's
		// gossip says it is alive and how loaded it is.
		participants, draining = pm.Load.Participants, pm.Draining
	} else if le != nil && s.judgesLiveness() {
		// Heard from it before, but not lately, and nobody vouches for it.
		// Only the leader can tell: every node forwards it the heartbeats
		// it gets, while a follower hears an edge only while that edge
		// reports to it, and an edge moves to another control node when
		// its own fails. A follower goes by the replicated record, which
		// the leader keeps (it marks a silent edge down), as it does for
		// an edge it never heard from.
		return 0, false
	}
	if draining {
		return 0, false
	}
	if e.Capacity > 0 {
		if participants >= e.Capacity {
			return 0, false
		}
		load = float64(participants) / float64(e.Capacity)
	}
	var heard time.Time
	if le := s.live[e.ID]; le != nil {
		heard = le.seen
	}
	if s.suspectedLocked(e.ID, heard, now) {
		return 0, false
	}
	return load, true
}

// judgesLiveness: this node hears every edge's heartbeats (the leader;
// also a Service without a Raft node, as its unit tests build one).
func (s *Service) judgesLiveness() bool { return s.node == nil || s.node.IsLeader() }

// poolReportLocked finds the freshest region-peer report that id is alive.
// s.mu held.
func (s *Service) poolReportLocked(id string, now time.Time) (edgeapi.PoolMember, bool) {
	var best edgeapi.PoolMember
	var bestSeen time.Time
	for reporter, le := range s.live {
		if reporter == id || now.Sub(le.seen) >= s.cfg.DownAfter || !le.seen.After(bestSeen) {
			continue
		}
		for _, m := range le.pool {
			if m.ID == id && m.State == edgeapi.MemberAlive {
				best, bestSeen = m, le.seen
			}
		}
	}
	return best, !bestSeen.IsZero()
}

// suspectedLocked: a fresh heartbeat from another edge of the region
// reports this one as not alive, and this node has not heard from the edge
// itself within LateAfter (heard: its last heartbeat here). An edge whose
// own heartbeats are on time is running and reaching the control plane; a
// gossip fault between it and its peers must not take it out of join
// answers (docs/multi-edge.md, "Edge liveness and load"). A mere suspicion
// (memberlist's probe timed out, as it may on a loaded host) also has to be
// newer than that heartbeat: an edge heard from since is evidently running —
// say, after the reporter itself died with that suspicion in its last
// heartbeat. s.mu held.
func (s *Service) suspectedLocked(id string, heard, now time.Time) bool {
	if now.Sub(heard) < s.cfg.LateAfter {
		return false
	}
	for reporter, le := range s.live {
		if reporter == id || now.Sub(le.seen) >= s.cfg.DownAfter {
			continue
		}
		for _, m := range le.pool {
			if m.ID != id || m.State == edgeapi.MemberAlive {
				continue
			}
			if m.State == edgeapi.MemberSuspect && !le.seen.After(heard) {
				continue
			}
			return true
		}
	}
	return false
}

// joinView is one consistent read of what a placement decision needs.
type joinView struct {
	edges     []*state.Edge
	placement *state.Placement // nil: not placed
	epoch     uint64
}

func (s *Service) readView(roomID string) joinView {
	var v joinView
	s.node.FSM().Read(func(st *state.Store) {
		v.edges = st.Edges()
		v.placement, _ = st.Placement(roomID)
	})
	if v.placement != nil {
		v.epoch = v.placement.Epoch
	}
	return v
}

// reserveFor is how long a join reserves its edge in the room: the ticket's
// life and a margin for the client to connect with it.
func (s *Service) reserveFor() time.Duration { return s.cfg.TicketTTL + s.cfg.ReserveMargin }

// reservedFor reports whether edgeID already serves the room in p with a
// reservation that outlasts a ticket issued now by half the margin, so a
// join may skip writing it again. A stale view (a follower a few entries
// behind) can only make this true for an edge that served the room a
// moment ago; an edge marked down leaves every placement in the same
// command, so a view never has it both down and serving.
func (s *Service) reservedFor(p *state.Placement, edgeID string, now time.Time) bool {
	if p == nil {
		return false
	}
	e, ok := p.Edge(edgeID)
	return ok && e.ReservedUntil.After(now.Add(s.cfg.TicketTTL+s.cfg.ReserveMargin/2))
}

// candidates lists the usable, allowed edges ranked for a joiner at loc.
func (s *Service) candidates(v joinView, ps []geo.Policy, loc geo.Location, avoid []string, now time.Time) []candidate {
	var out []candidate
	for _, e := range v.edges {
		if !s.allowed(e.Region, ps) || slices.Contains(avoid, e.ID) {
			continue
		}
		load, ok := s.usable(e, now)
		if !ok {
			continue
		}
		c := candidate{edge: e, load: load, dist: s.cfg.Catalog.Distance(loc, geo.Site{ID: e.ID, Region: e.Region, Lat: e.Latitude, Lon: e.Longitude})}
		c.serving = v.placement != nil && v.placement.Has(e.ID)
		c.tie = rand.Uint32()
		out = append(out, c)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if da, db := a.dist, b.dist; !(math.IsNaN(da) && math.IsNaN(db)) && da != db {
			switch {
			case math.IsNaN(da):
				return false
			case math.IsNaN(db):
				return true
			}
			// Edges of one region are "as near" as each other: prefer
			// one already serving the room, then the least loaded.
			if a.edge.Region != b.edge.Region {
				return da < db
			}
		}
		if a.serving != b.serving {
			return a.serving
		}
		// Loads within 5 points are equal: control nodes see them a
		// heartbeat apart. Among equals, chance spreads new rooms instead
		// of piling them on the first edge by name.
		if la, lb := math.Round(a.load*20), math.Round(b.load*20); la != lb {
			return la < lb
		}
		return a.tie < b.tie
	})
	return out
}

// decide picks the edge for a joiner from ranked candidates
// (docs/multi-edge.md, "Choosing edges").
func (s *Service) decide(cands []candidate) candidate {
	nearest := cands[0]
	for _, c := range cands {
		if !c.serving {
			continue
		}
		// The nearest edge already serving the room: use it when it is in
		// the joiner's nearest region or not much farther than the nearest.
		if c.edge.Region == nearest.edge.Region || (!math.IsNaN(c.dist) && !math.IsNaN(nearest.dist) && c.dist-nearest.dist <= s.cfg.NearKm) {
			return c
		}
		break
	}
	return nearest // home edge, or a far joiner's (or a spill-over) edge
}

// Join places the participant (recording the room's edges in Raft with a
// compare-and-set on the placement epoch) and signs tickets for the chosen
// edge and up to MaxCandidates-1 alternates.
func (s *Service) Join(ctx context.Context, req api.JoinRequest) (*api.JoinResponse, error) {
	sec, err := s.cfg.Secrets()
	if err != nil {
		return nil, &api.Error{Status: fiber.StatusServiceUnavailable, Message: "cluster secrets not ready", RetryAfter: 1}
	}
	ps, err := s.policies(req.Room)
	if err != nil {
		return nil, err
	}
	loc, err := s.locate(req.Hint, req.ClientIP)
	if err != nil {
		return nil, err
	}
	for attempt := 0; attempt < 8; attempt++ {
		now := s.cfg.Now()
		v := s.readView(req.Room.RoomID)
		cands := s.candidates(v, ps, loc, req.AvoidEdges, now)
		if len(cands) == 0 {
			if len(ps) > 0 {
				return nil, &api.Error{Status: fiber.StatusServiceUnavailable, RetryAfter: 5,
					Message: fmt.Sprintf("room %q is pinned to %s and no edge there is available; it will not fall back to another region", req.Room.RoomID, geo.DescribeAll(ps...))}
			}
			return nil, &api.Error{Status: fiber.StatusServiceUnavailable, Message: ErrNoEdge.Error(), RetryAfter: 5}
		}
		choice := s.decide(cands)
		alts := make([]candidate, 0, s.cfg.MaxCandidates-1)
		for _, c := range cands {
			if c.edge.ID != choice.edge.ID && len(alts) < s.cfg.MaxCandidates-1 {
				alts = append(alts, c)
			}
		}
		// In a room with maxParticipants a direct joiner takes a seat in the
		// same write (one waiting in the lobby is counted by its edge when
		// admitted): concurrent joins through any node are ordered by the
		// log, so together they cannot exceed the cap, whichever edges they
		// land on.
		seat := ""
		if req.Room.MaxParticipants > 0 && !(req.AskJoin && !req.Moderate) {
			seat = req.ParticipantID
		}
		if seat == "" && s.reservedFor(v.placement, choice.edge.ID, now) {
			// The room is on that edge already, reserved beyond this
			// ticket's life: the write would change nothing (same edges,
			// same epoch), so a busy room's joins skip it, and write again
			// only once the reservation runs short (every ReserveMargin/2).
			return s.respond(req, sec, ps, v.edges, v.epoch, choice, alts, now)
		}
		raw, index, err := s.node.Apply(ctx, state.CmdPlaceRoom, state.PlaceRoom{RoomID: req.Room.RoomID, ExpectEpoch: v.epoch, EdgeID: choice.edge.ID,
			ReserveFor: int64(s.reserveFor() / time.Second), At: now.UTC(), Seat: seat})
		var se *state.Error
		if errors.As(err, &se) && se.Code == state.CodeConflict {
			// Another join (through any node, under any leader) changed the
			// placement first: read what won and decide again.
			if werr := s.node.WaitApplied(ctx, index); werr != nil {
				return nil, werr
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		var p state.Placement
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, err
		}
		if p.Epoch != v.epoch {
			s.pushPeers(&p, choice.edge.ID)
		}
		return s.respond(req, sec, ps, v.edges, p.Epoch, choice, alts, now)
	}
	return nil, &api.Error{Status: fiber.StatusServiceUnavailable, Message: "room placement is changing too fast; retry", RetryAfter: 1}
}

func (s *Service) locate(h geo.Hint, clientIP string) (geo.Location, error) {
	ip, _ := netip.ParseAddr(clientIP)
	loc, err := s.cfg.Locator.Locate(h, ip)
	switch {
	case errors.Is(err, geo.ErrUnknownRegion):
		return loc, &api.Error{Status: fiber.StatusBadRequest, Message: fmt.Sprintf("field \"region\": unknown region %q", h.Region)}
	case errors.Is(err, geo.ErrBadCoordinates):
		return loc, &api.Error{Status: fiber.StatusBadRequest, Message: "fields \"lat\" and \"lon\" must both be given, with lat in [-90, 90] and lon in [-180, 180]"}
	case err != nil:
		return loc, err
	}
	return loc, nil
}

func (s *Service) respond(req api.JoinRequest, sec *Secrets, ps []geo.Policy, edges []*state.Edge, epoch uint64, choice candidate, alts []candidate, now time.Time) (*api.JoinResponse, error) {
	resp := &api.JoinResponse{RoomID: req.Room.RoomID, ParticipantID: req.ParticipantID, Name: req.Name}
	regions := s.allowedRegions(ps, edges)
	exp := now.Add(s.cfg.TicketTTL)
	// A guest who may only ask to join but whose id is active in the room's
	// session may have been admitted before and be moving to another edge
	// (its edge failed or drains): the ticket says so. That is not proof the
	// caller is that guest: an ask_join token that names no participant
	// lets its holder ask under any id, the host's included. So the edge
	// lets an admitted ticket past the lobby only with the proof the guest
	// got when it was admitted (its resume token, docs/signaling.md), and
	// never lets a guest that proved nothing take over a connected
	// participant.
	asker := req.AskJoin && !req.Moderate
	admitted := false
	if asker {
		s.node.FSM().Read(func(st *state.Store) { _, admitted = st.ActiveInSession(req.Room.ID, req.ParticipantID) })
	}
	for i, c := range append([]candidate{choice}, alts...) {
		claims := ticket.Claims{RoomID: req.Room.RoomID, ParticipantID: req.ParticipantID, ParticipantName: req.Name, EdgeID: c.edge.ID,
			Permissions:     ticket.Permissions{Publish: req.Publish, Subscribe: req.Subscribe, Moderate: req.Moderate, AskJoin: req.AskJoin},
			MaxParticipants: req.Room.MaxParticipants, AllowedRegions: regions, Epoch: epoch, Claim: i > 0, Admitted: admitted, IssuedAt: now.Unix(), IssuedAtMs: now.UnixMilli(), ExpiresAt: exp.Unix()}
		tok, err := ticket.Sign(sec.TicketKey, claims)
		if err != nil {
			return nil, err
		}
		user, pass := turncred.Generate(sec.TURNSecret, req.ParticipantID, now, s.cfg.TURNTTL)
		var servers []api.ICEServer
		if len(c.edge.STUNURLs) > 0 {
			servers = append(servers, api.ICEServer{URLs: c.edge.STUNURLs})
		}
		// No TURN credentials for a guest who may only ask to join: it
		// gets them from the edge in `joined`, once admitted there. Here
		// they would be credentials for whatever id it asked under, usable
		// while it waits in the lobby, or while the participant whose id it
		// gave is admitted on that edge.
		if len(c.edge.TURNURLs) > 0 && !asker {
			servers = append(servers, api.ICEServer{URLs: c.edge.TURNURLs, Username: user, Credential: pass})
		}
		if servers == nil {
			servers = []api.ICEServer{}
		}
		jc := api.JoinCandidate{EdgeID: c.edge.ID, Region: c.edge.Region, SignalURL: c.edge.SignalURL, ICEServers: servers,
			Ticket: tok, TicketExpiresAt: exp.UTC().Format("2006-01-02T15:04:05.000Z")}
		if !math.IsNaN(c.dist) {
			d := math.Round(c.dist*10) / 10
			jc.DistanceKm = &d
		}
		resp.Edges = append(resp.Edges, jc)
	}
	return resp, nil
}

// Nearest ranks the edges a caller may use (its key's pin applies) by
// distance from where the caller is.
func (s *Service) Nearest(ctx context.Context, req api.NearestRequest) (*api.NearestResponse, error) {
	loc, err := s.locate(req.Hint, req.ClientIP)
	if err != nil {
		return nil, err
	}
	var ps []geo.Policy
	if !req.Pin.Empty() {
		ps = append(ps, geo.Policy{Regions: req.Pin.Regions, Jurisdictions: req.Pin.Jurisdictions})
	}
	v := s.readView("")
	cands := s.candidates(v, ps, loc, nil, s.cfg.Now())
	resp := &api.NearestResponse{Location: loc, Edges: []api.NearestEdge{}}
	for _, c := range cands {
		if req.Limit > 0 && len(resp.Edges) >= req.Limit {
			break
		}
		ne := api.NearestEdge{EdgeID: c.edge.ID, Region: c.edge.Region, SignalURL: c.edge.SignalURL, Load: math.Round(c.load*1000) / 1000}
		if !math.IsNaN(c.dist) {
			d := math.Round(c.dist*10) / 10
			ne.DistanceKm = &d
		}
		resp.Edges = append(resp.Edges, ne)
	}
	if len(resp.Edges) == 0 {
		msg := ErrNoEdge.Error()
		if len(ps) > 0 {
			msg = fmt.Sprintf("no edge in %s is available", geo.DescribeAll(ps...))
		}
		return nil, &api.Error{Status: fiber.StatusServiceUnavailable, Message: msg, RetryAfter: 5}
	}
	return resp, nil
}

// Describe says how joiners are located (startup log).
func (s *Service) Describe() string {
	return s.cfg.Locator.Describe() + "; geoFences " + strings.Join(s.cfg.Fences.Codes(), ",")
}
