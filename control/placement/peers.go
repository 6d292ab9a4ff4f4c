package placement

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/meridian-video/meridian/control/api"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/shared/edgeapi"
	"github.com/meridian-video/meridian/shared/ticket"
)

// roomPeers builds what edgeID needs to link with the other edges of a
// room: their addresses and a relay ticket per pair. Edges that are down
// are left out (their legs are gone anyway).
func (s *Service) roomPeers(roomID, edgeID string, sec *Secrets, now time.Time) (edgeapi.RoomPeers, error) {
	rp := edgeapi.RoomPeers{RoomID: roomID, Peers: []edgeapi.Peer{}}
	var (
		p     *state.Placement
		edges = map[string]*state.Edge{}
		room  *state.Room
	)
	s.node.FSM().Read(func(st *state.Store) {
		p, _ = st.Placement(roomID)
		room, _ = st.RoomByRoomID(roomID)
		if p != nil {
			for _, id := range append(p.EdgeIDs(), edgeID) {
				if e, ok := st.Edge(id); ok {
					edges[id] = e
				}
			}
		}
	})
	if p == nil {
		return rp, nil
	}
	rp.Epoch, rp.Home, rp.Member = p.Epoch, p.Home, p.Has(edgeID)
	me := edges[edgeID]
	if !rp.Member || me == nil || len(me.PublicKey) == 0 {
		return rp, nil
	}
	var regions []string
	if room != nil {
		ps, err := s.policies(room)
		if err != nil {
			return rp, err
		}
		all := make([]*state.Edge, 0, len(edges))
		for _, e := range edges {
			all = append(all, e)
		}
		regions = s.allowedRegions(ps, all)
	}
	for _, id := range p.EdgeIDs() {
		o := edges[id]
		if id == edgeID || o == nil || !o.Up || len(o.PublicKey) == 0 {
			continue
		}
		tok, err := ticket.SignRelay(sec.TicketKey, ticket.RelayClaims{RoomID: roomID, Epoch: p.Epoch,
			Edges:          []ticket.RelayEdge{{ID: me.ID, Region: me.Region, Key: me.PublicKey}, {ID: o.ID, Region: o.Region, Key: o.PublicKey}},
			AllowedRegions: regions, IssuedAt: now.Unix(), ExpiresAt: now.Add(s.cfg.RelayTicketTTL).Unix()})
		if err != nil {
			return rp, err
		}
		rp.Peers = append(rp.Peers, edgeapi.Peer{EdgeID: o.ID, Region: o.Region, URL: o.InternalURL, RelayTicket: tok})
	}
	return rp, nil
}

// pushPeers tells every edge serving a room (but skip) about a placement
// change, in the background.
func (s *Service) pushPeers(p *state.Placement, skip string) {
	sec, err := s.cfg.Secrets()
	if err != nil {
		return
	}
	now := s.cfg.Now()
	for _, id := range p.EdgeIDs() {
		if id == skip {
			continue
		}
		rp, err := s.roomPeers(p.RoomID, id, sec, now)
		if err != nil {
			continue
		}
		var url string
		s.node.FSM().Read(func(st *state.Store) {
			if e, ok := st.Edge(id); ok && e.Up {
				url = e.InternalURL
			}
		})
		if url == "" {
			continue
		}
		select {
		case s.pushes <- pushJob{url: url, rp: rp}:
		default:
			s.log.Warn("placement: peer push queue full; heartbeats will repair", "room", p.RoomID, "edge", id)
		}
	}
}

// pushDropped tells the edges of rooms that lost an edge (it went down).
func (s *Service) pushRooms(rooms []string) {
	for _, room := range rooms {
		var p *state.Placement
		s.node.FSM().Read(func(st *state.Store) { p, _ = st.Placement(room) })
		if p != nil {
			s.pushPeers(p, "")
		}
	}
}

// attach: POST /internal/v1/rooms/attach. An edge asks for a room's peers;
// with claim it first joins the room's placement (an alternate candidate
// was used, or it found itself dropped while it still has participants).
func (s *Service) attach(c *fiber.Ctx) error {
	var req edgeapi.Attach
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.EdgeID == "" || req.RoomID == "" {
		return &api.Error{Status: fiber.StatusBadRequest, Message: "attach needs edgeId and roomId"}
	}
	sec, err := s.cfg.Secrets()
	if err != nil {
		return &api.Error{Status: fiber.StatusServiceUnavailable, Message: "cluster secrets not ready", RetryAfter: 1}
	}
	if req.Claim {
		if err := s.claim(c, req); err != nil {
			return err
		}
	} else if !s.node.IsLeader() {
		// The edge is about to admit a participant whose join was placed
		// through any control node: a follower that has not applied that
		// placement yet would answer without the room's other edges, and
		// the participant would be admitted before its cascade legs exist.
		if err := s.node.Barrier(c.UserContext()); err != nil {
			return err
		}
	}
	rp, err := s.roomPeers(req.RoomID, req.EdgeID, sec, s.cfg.Now())
	if err != nil {
		return err
	}
	return c.JSON(rp)
}

// claim adds an edge to a room's placement if the room's pins allow its
// region and it is up; it never moves the room anywhere else.
func (s *Service) claim(c *fiber.Ctx, req edgeapi.Attach) error {
	if err := s.mayServe(req.RoomID, req.EdgeID, true); err != nil {
		return err
	}
	return s.place(c.UserContext(), req.RoomID, req.EdgeID, "")
}

// mayServe checks that edgeID may be added to the room's placement: the
// room exists and is active, the edge is up (and, for a room new to it,
// not draining), and the room's pins allow the edge's region. A claim and
// a seat both add the edge, so both ask.
func (s *Service) mayServe(roomID, edgeID string, newRoom bool) error {
	var room *state.Room
	var edge *state.Edge
	s.node.FSM().Read(func(st *state.Store) {
		room, _ = st.RoomByRoomID(roomID)
		edge, _ = st.Edge(edgeID)
	})
	if room == nil || room.Disabled {
		return &api.Error{Status: fiber.StatusNotFound, Message: fmt.Sprintf("room %q not found or deactivated", roomID)}
	}
	if edge == nil || !edge.Up || (newRoom && edge.Draining) {
		return &api.Error{Status: fiber.StatusConflict, Message: fmt.Sprintf("edge %q is not available for new rooms", edgeID)}
	}
	ps, err := s.policies(room)
	if err != nil {
		return err
	}
	if !s.allowed(edge.Region, ps) {
		return &api.Error{Status: fiber.StatusForbidden, Message: fmt.Sprintf("room %q may not be served in region %q", roomID, edge.Region)}
	}
	return nil
}

// place records the edge in the room's placement (a fenced write, retried
// while other writes move the epoch), holding a seat for `seat` if given
// (state.PlaceRoom.Seat), and tells the room's edges when it changed.
func (s *Service) place(ctx context.Context, roomID, edgeID, seat string) error {
	for attempt := 0; attempt < 8; attempt++ {
		var epoch uint64
		s.node.FSM().Read(func(st *state.Store) { epoch = st.PlacementEpoch(roomID) })
		raw, index, err := s.node.Apply(ctx, state.CmdPlaceRoom, state.PlaceRoom{RoomID: roomID, ExpectEpoch: epoch, EdgeID: edgeID,
			ReserveFor: int64(s.reserveFor() / time.Second), At: s.cfg.Now().UTC(), Seat: seat})
		var se *state.Error
		if errors.As(err, &se) && se.Code == state.CodeConflict {
			if werr := s.node.WaitApplied(ctx, index); werr != nil {
				return werr
			}
			continue
		}
		if err != nil {
			return err
		}
		var p state.Placement
		if err := json.Unmarshal(raw, &p); err != nil {
			return err
		}
		if p.Epoch != epoch {
			s.pushPeers(&p, edgeID)
		}
		return nil
	}
	return &api.Error{Status: fiber.StatusServiceUnavailable, Message: "room placement is changing too fast; retry", RetryAfter: 1}
}

// seat holds a place in a room with maxParticipants for a lobby guest a
// moderator admitted: direct joiners take theirs through the join API, and
// a guest's edge asks before admitting one, so that admissions on two
// edges at the same instant, and seats held for joiners on their way,
// cannot together pass the cap. Refused is an answer (granted false), not
// an error: the edge then turns the guest away as the room is full.
func (s *Service) seat(c *fiber.Ctx) error {
	var req edgeapi.Seat
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.EdgeID == "" || req.RoomID == "" || req.ParticipantID == "" {
		return &api.Error{Status: fiber.StatusBadRequest, Message: "seat needs edgeId, roomId and participantId"}
	}
	if err := s.mayServe(req.RoomID, req.EdgeID, false); err != nil {
		return err
	}
	err := s.place(c.UserContext(), req.RoomID, req.EdgeID, req.ParticipantID)
	var se *state.Error
	if errors.As(err, &se) && se.Code == state.CodeForbidden {
		return c.JSON(edgeapi.SeatReply{Message: se.Message})
	}
	if err != nil {
		return err
	}
	return c.JSON(edgeapi.SeatReply{Granted: true})
}

// reconcile answers a heartbeat's room list: the current peers of every
// room whose epoch the edge has wrong (or which it no longer serves).
func (s *Service) reconcile(edgeID string, rooms []edgeapi.RoomEpoch) []edgeapi.RoomPeers {
	if len(rooms) == 0 {
		return nil
	}
	sec, err := s.cfg.Secrets()
	if err != nil {
		return nil
	}
	var stale []string
	s.node.FSM().Read(func(st *state.Store) {
		for _, r := range rooms {
			p, ok := st.Placement(r.RoomID)
			if !ok || p.Epoch != r.Epoch || !p.Has(edgeID) {
				stale = append(stale, r.RoomID)
			}
		}
	})
	now := s.cfg.Now()
	var out []edgeapi.RoomPeers
	for _, room := range stale {
		if rp, err := s.roomPeers(room, edgeID, sec, now); err == nil {
			out = append(out, rp)
		}
	}
	return out
}
