package state

import (
	"slices"
	"sort"
	"time"
)

// RoomEdge is one edge serving a room.
type RoomEdge struct {
	EdgeID  string    `json:"edgeId"`
	Region  string    `json:"region"`
	AddedAt time.Time `json:"addedAt"`
	// ReservedUntil keeps the edge in the room while a joiner sent there
	// has not connected yet (its ticket is still valid), even with no
	// participant on it.
	ReservedUntil time.Time `json:"reservedUntil"`
}

// Placement is the set of edges serving a room. Epoch is the Raft index of
// the last change to the set: it only grows (also across a placement that
// is dropped and created again), so edges can ignore stale peer lists and
// proposers can compare-and-set on it.
type Placement struct {
	RoomID      string     `json:"roomId"`
	Epoch       uint64     `json:"epoch"`
	Home        string     `json:"home"`
	Edges       []RoomEdge `json:"edges"` // sorted by edge id
	UpdatedAt   time.Time  `json:"updatedAt"`
	CreateIndex uint64     `json:"createIndex"`
	ModifyIndex uint64     `json:"modifyIndex"`
	// Seats are held in a room with maxParticipants for joiners the join
	// API let in who have not reached their edge yet (PlaceRoom.Seat).
	Seats []Seat `json:"seats,omitempty"`
}

// Seat is a place in a capped room held for a participant between the
// join API and its edge's report of the join (which releases it), or until
// its ticket can no longer be used.
type Seat struct {
	ParticipantID string    `json:"participantId"`
	Until         time.Time `json:"until"`
}

func (p *Placement) clone() *Placement {
	c := *p
	c.Edges = slices.Clone(p.Edges)
	c.Seats = slices.Clone(p.Seats)
	return &c
}

// Has reports whether edgeID serves the room.
func (p *Placement) Has(edgeID string) bool { return p.edge(edgeID) != nil }

// Edge returns edgeID's entry, if it serves the room.
func (p *Placement) Edge(edgeID string) (RoomEdge, bool) {
	if e := p.edge(edgeID); e != nil {
		return *e, true
	}
	return RoomEdge{}, false
}

func (p *Placement) edge(id string) *RoomEdge {
	for i := range p.Edges {
		if p.Edges[i].EdgeID == id {
			return &p.Edges[i]
		}
	}
	return nil
}

// EdgeIDs lists the serving edges.
func (p *Placement) EdgeIDs() []string {
	out := make([]string, len(p.Edges))
	for i, e := range p.Edges {
		out[i] = e.EdgeID
	}
	return out
}

// PlaceRoom adds an edge to a room's placement (creating it with that edge
// as home) if the placement's epoch is still ExpectEpoch (0: no placement).
// Adding an edge that already serves the room only extends its reservation.
type PlaceRoom struct {
	RoomID      string    `json:"roomId"`
	ExpectEpoch uint64    `json:"expectEpoch"`
	EdgeID      string    `json:"edgeId"`
	ReserveFor  int64     `json:"reserveFor"` // seconds from At
	At          time.Time `json:"at"`
	// Seat, in a room with maxParticipants (read from the room's record),
	// is the joiner's participant id: the command fails (forbidden) unless
	// the room has a place for it
	// counting the active participants of its ongoing session and the
	// seats held for others, each id once; it then holds one for
	// ReserveFor. Edges enforce the cap too, but two edges of a room
	// admitting joiners at the same instant cannot see each other's in
	// time; the Raft log orders the join API's calls.
	Seat string `json:"seat,omitempty"`
}

// UnplaceRoomEdges removes edges from a room (an edge that no longer has
// participants there, or that left). ExpectEpoch 0 skips the check. When the
// home edge goes, NewHome (or else the oldest remaining edge) takes over;
// when none remains the placement is dropped.
type UnplaceRoomEdges struct {
	RoomID      string    `json:"roomId"`
	ExpectEpoch uint64    `json:"expectEpoch"`
	Remove      []string  `json:"remove"`
	NewHome     string    `json:"newHome,omitempty"`
	At          time.Time `json:"at"`
}

func init() {
	register(CmdPlaceRoom, applyPlaceRoom)
	register(CmdUnplaceRoomEdges, applyUnplaceRoomEdges)
}

func (s *Store) placement(roomID string) *Placement {
	return one[*Placement](s, tPlacements, "id", roomID)
}

func applyPlaceRoom(s *Store, index uint64, c *PlaceRoom) (any, error) {
	if c.RoomID == "" || c.EdgeID == "" {
		return nil, errf(CodeInvalid, "place room needs roomId and edgeId")
	}
	old := s.placement(c.RoomID)
	var cur uint64
	if old != nil {
		cur = old.Epoch
	}
	if cur != c.ExpectEpoch {
		return nil, errf(CodeConflict, "placement of room %q changed (epoch %d, expected %d)", c.RoomID, cur, c.ExpectEpoch)
	}
	e := s.edge(c.EdgeID)
	if e == nil || !e.Up || e.Draining {
		// The proposer decided on a view the log has moved past: it retries.
		return nil, errf(CodeConflict, "edge %q is not available", c.EdgeID)
	}
	until := c.At.Add(time.Duration(c.ReserveFor) * time.Second)
	var seats []Seat
	if c.Seat != "" {
		if r := s.roomByRoomID(c.RoomID); r != nil && r.MaxParticipants > 0 {
			var held []Seat
			if old != nil {
				held = old.Seats
			}
			var err error
			if seats, err = s.takeSeat(r, held, c, until); err != nil {
				return nil, err
			}
		}
	}
	var p *Placement
	if old == nil {
		p = &Placement{RoomID: c.RoomID, Home: c.EdgeID, CreateIndex: index}
	} else {
		p = old.clone()
	}
	if seats != nil {
		p.Seats = seats
	}
	if re := p.edge(c.EdgeID); re != nil {
		if until.After(re.ReservedUntil) {
			re.ReservedUntil = until
		}
	} else {
		p.Edges = append(p.Edges, RoomEdge{EdgeID: c.EdgeID, Region: e.Region, AddedAt: c.At, ReservedUntil: until})
		sort.Slice(p.Edges, func(i, j int) bool { return p.Edges[i].EdgeID < p.Edges[j].EdgeID })
		p.Epoch = index
	}
	p.UpdatedAt = c.At
	p.ModifyIndex = index
	s.put(tPlacements, p)
	s.bump("placements", index)
	return p.clone(), nil
}

func applyUnplaceRoomEdges(s *Store, index uint64, c *UnplaceRoomEdges) (any, error) {
	old := s.placement(c.RoomID)
	if old == nil {
		if c.ExpectEpoch != 0 {
			return nil, errf(CodeConflict, "room %q has no placement", c.RoomID)
		}
		return (*Placement)(nil), nil
	}
	if c.ExpectEpoch != 0 && old.Epoch != c.ExpectEpoch {
		return nil, errf(CodeConflict, "placement of room %q changed (epoch %d, expected %d)", c.RoomID, old.Epoch, c.ExpectEpoch)
	}
	p := s.removeFromPlacement(index, old, c.Remove, c.NewHome, c.At)
	if p == nil {
		return (*Placement)(nil), nil
	}
	return p.clone(), nil
}

// removeFromPlacement drops edges from a stored placement (a new epoch when
// any was there) and returns what is stored now (nil: dropped).
func (s *Store) removeFromPlacement(index uint64, old *Placement, remove []string, newHome string, at time.Time) *Placement {
	p := old.clone()
	p.Edges = slices.DeleteFunc(p.Edges, func(e RoomEdge) bool { return slices.Contains(remove, e.EdgeID) })
	if len(p.Edges) == len(old.Edges) {
		return old
	}
	p.Epoch = index
	p.ModifyIndex = index
	p.UpdatedAt = at
	s.bump("placements", index)
	if len(p.Edges) == 0 {
		s.del(tPlacements, old)
		return nil
	}
	if !p.Has(p.Home) {
		if newHome != "" && p.Has(newHome) {
			p.Home = newHome
		} else {
			oldest := p.Edges[0]
			for _, e := range p.Edges[1:] {
				if e.AddedAt.Before(oldest.AddedAt) || (e.AddedAt.Equal(oldest.AddedAt) && e.EdgeID < oldest.EdgeID) {
					oldest = e
				}
			}
			p.Home = oldest.EdgeID
		}
	}
	s.put(tPlacements, p)
	return p
}

// dropEdgeEverywhere removes an edge from every room it serves (it is down).
func (s *Store) dropEdgeEverywhere(index uint64, edgeID string, at time.Time) {
	for _, p := range all[*Placement](s.iter(tPlacements, "edge", false, edgeID)) {
		s.removeFromPlacement(index, p, []string{edgeID}, "", at)
	}
}

// Placement returns a room's placement (by public room id).
func (s *Store) Placement(roomID string) (*Placement, bool) {
	p := s.placement(roomID)
	if p == nil {
		return nil, false
	}
	return p.clone(), true
}

// PlacementEpoch is the room's current epoch (0 when not placed), without copying.
func (s *Store) PlacementEpoch(roomID string) uint64 {
	if p := s.placement(roomID); p != nil {
		return p.Epoch
	}
	return 0
}

// EdgeRooms lists the rooms an edge serves, sorted.
func (s *Store) EdgeRooms(edgeID string) []string {
	out := []string{}
	for _, p := range all[*Placement](s.iter(tPlacements, "edge", false, edgeID)) {
		out = append(out, p.RoomID)
	}
	return out
}

// Placements lists every placement by room id (leader repair loop).
func (s *Store) Placements() []*Placement {
	out := []*Placement{}
	for _, p := range all[*Placement](s.iter(tPlacements, "id", false)) {
		out = append(out, p.clone())
	}
	return out
}

// takeSeat returns the room's seats with one held for c.Seat until
// `until`, or forbidden when the room has no place for it: the active
// participants of its ongoing session and the unexpired seats of others
// already make the room's maxParticipants (each participant id counted
// once, the joiner never: a participant joining again, e.g. moving to
// another edge, keeps its place). Expired seats are dropped.
func (s *Store) takeSeat(r *Room, held []Seat, c *PlaceRoom, until time.Time) ([]Seat, error) {
	taken := map[string]bool{}
	if ss := s.ongoingSession(r.ID); ss != nil {
		for _, sp := range ss.Participants {
			if sp.Active() {
				taken[sp.ParticipantID] = true
			}
		}
	}
	seats := make([]Seat, 0, len(held)+1)
	for _, st := range held {
		if st.Until.After(c.At) && st.ParticipantID != c.Seat {
			seats = append(seats, st)
			taken[st.ParticipantID] = true
		}
	}
	delete(taken, c.Seat)
	if len(taken) >= r.MaxParticipants {
		return nil, errf(CodeForbidden, "room %q is full (maxParticipants %d)", c.RoomID, r.MaxParticipants)
	}
	return append(seats, Seat{ParticipantID: c.Seat, Until: until}), nil
}

// releaseSeat drops the seat held for pid in the room (its edge reported
// it joined: from now on its session counts it).
func (s *Store) releaseSeat(roomID, pid string, index uint64) {
	old := s.placement(roomID)
	if old == nil || !slices.ContainsFunc(old.Seats, func(st Seat) bool { return st.ParticipantID == pid }) {
		return
	}
	p := old.clone()
	p.Seats = slices.DeleteFunc(p.Seats, func(st Seat) bool { return st.ParticipantID == pid })
	if len(p.Seats) == 0 {
		p.Seats = nil
	}
	p.ModifyIndex = index
	s.put(tPlacements, p)
	s.bump("placements", index)
}
