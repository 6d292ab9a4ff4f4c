package signal

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/meridian-video/meridian/shared/edgeapi"
	wire "github.com/meridian-video/meridian/shared/signal"
)

// Cascade is told what happens to this edge's own participants, so the
// edges that relay the room hear of it (edge/cascade implements it). Its
// methods must not block.
type Cascade interface {
	LocalJoined(roomID string, p edgeapi.CascadeParticipant)
	LocalLeft(roomID, participantID, reason string)
	LocalMute(roomID string, m wire.Mute)
	// LocalRoomEmpty: the room has no participant on this edge any more.
	LocalRoomEmpty(roomID string)
	// Moderate forwards a moderator's action to the edge a remote
	// participant is on; false when no such remote participant is known.
	Moderate(roomID, participantID, action, kind string) bool
}

// cascadeRef holds the Cascade, set once the edge is assembled.
type cascadeRef struct{ p atomic.Pointer[Cascade] }

func (c *cascadeRef) get() Cascade {
	if p := c.p.Load(); p != nil {
		return *p
	}
	return nil
}

// SetCascade connects the room events of this edge to other edges.
func (s *Server) SetCascade(c Cascade) { s.cascade.p.Store(&c) }

// remoteMember is a participant of the room connected to another edge,
// relayed in by a cascade leg.
type remoteMember struct {
	id, name  string
	moderator bool
	origin    string      // edge it is on
	lost      *time.Timer // set while its leg is down (grace before "left")
}

// present reports whether pid is in the room for this edge's clients
// (local and admitted, or remote). s.mu held.
func (r *room) localAnnounced(pid string) bool {
	m := r.members[pid]
	return m != nil && m.announced && m.state != stateGone
}

// RemoteJoined adds (or refreshes) a participant relayed from edge origin.
func (s *Server) RemoteJoined(roomID, origin string, p wire.Participant) {
	s.mu.Lock()
	// Legs set up ahead of the room's first participant here: keep the
	// relayed participants for its `joined`.
	r := s.roomLocked(roomID)
	if r.remotes == nil {
		r.remotes = map[string]*remoteMember{}
	}
	rm := r.remotes[p.ParticipantID]
	fresh := rm == nil
	if fresh {
		rm = &remoteMember{id: p.ParticipantID}
		r.remotes[p.ParticipantID] = rm
	}
	if rm.lost != nil {
		rm.lost.Stop()
		rm.lost = nil
	}
	rm.name, rm.moderator, rm.origin = p.Name, p.Moderator, origin
	delete(r.admitted, p.ParticipantID) // in the room: an admit remembered for it has served
	var targets []*member
	if fresh && !r.localAnnounced(p.ParticipantID) {
		targets = s.othersLocked(roomID, p.ParticipantID)
	}
	s.mu.Unlock()
	if len(targets) > 0 {
		s.deliverAllSoon(targets, wire.MustMarshal(wire.TypeParticipantJoined, wire.Participant{ParticipantID: p.ParticipantID, Name: p.Name,
			Moderator: p.Moderator, Tracks: []wire.TrackInfo{}}))
	}
}

// RemoteLeft removes a relayed participant. lost means its edge became
// unreachable: it stays listed for RemoteGrace in case it reappears
// (through another edge) before anyone is told it left.
func (s *Server) RemoteLeft(roomID, origin, pid, reason string, lost bool) {
	s.mu.Lock()
	r := s.rooms[roomID]
	var rm *remoteMember
	if r != nil {
		rm = r.remotes[pid]
	}
	if rm == nil || rm.origin != origin {
		s.mu.Unlock()
		return // unknown, or it moved to another edge meanwhile
	}
	// A participant that moved on from its edge (make before break) is
	// normally relayed from its new edge before it leaves the old one, but
	// the legs to its new edge may still be opening: same grace as a lost leg.
	if (lost || reason == wire.ReasonMoved) && s.cfg.RemoteGrace > 0 {
		if rm.lost == nil {
			final := reason
			if final == wire.ReasonMoved {
				final = wire.ReasonLeft
			}
			rm.lost = time.AfterFunc(s.cfg.RemoteGrace, func() { s.RemoteLeft(roomID, origin, pid, final, false) })
		}
		s.mu.Unlock()
		return
	}
	if rm.lost != nil {
		rm.lost.Stop()
	}
	delete(r.remotes, pid)
	if r.empty() {
		delete(s.rooms, roomID)
	}
	var targets []*member
	if !r.localAnnounced(pid) {
		targets = s.othersLocked(roomID, pid)
	}
	s.mu.Unlock()
	if len(targets) > 0 {
		s.deliverAllSoon(targets, wire.MustMarshal(wire.TypeParticipantLeft, wire.ParticipantLeft{ParticipantID: pid, Reason: reason}))
	}
}

// RemoteMute tells this edge's clients about a relayed participant's mute.
func (s *Server) RemoteMute(roomID string, m wire.Mute) {
	s.broadcast(roomID, m.ParticipantID, wire.MustMarshal(wire.TypeMute, m))
}

// RemoteQuality tells this edge's clients a relayed participant's quality.
func (s *Server) RemoteQuality(roomID, pid string, score float64) {
	s.broadcastSoon(roomID, pid, wire.MustMarshal(wire.TypeConnectionQuality, wire.ConnectionQuality{ParticipantID: pid, Score: score}))
}

// LocalParticipants lists the room's admitted participants on this edge
// with their tracks (what a new cascade leg is told first).
func (s *Server) LocalParticipants(roomID string) []edgeapi.CascadeParticipant {
	type entry struct {
		id, name string
		mod      bool
		since    time.Time
		m        *member
	}
	s.mu.Lock()
	var es []entry
	if r := s.rooms[roomID]; r != nil {
		for id, m := range r.members {
			if m.announced && m.state != stateGone {
				es = append(es, entry{id, m.name, m.perms.Moderate, m.since, m})
			}
		}
	}
	s.mu.Unlock()
	out := make([]edgeapi.CascadeParticipant, 0, len(es))
	for _, e := range es {
		tracks := []wire.TrackInfo{}
		if media := e.m.mediaNow(); media != nil {
			tracks = media.Tracks()
		}
		out = append(out, edgeapi.CascadeParticipant{Participant: wire.Participant{ParticipantID: e.id, Name: e.name, Moderator: e.mod, Tracks: tracks},
			Since: e.since.UnixMilli()})
	}
	slices.SortFunc(out, func(a, b edgeapi.CascadeParticipant) int { return cmpString(a.ParticipantID, b.ParticipantID) })
	return out
}

// IsLocal reports whether pid is admitted in the room on this edge.
func (s *Server) IsLocal(roomID, pid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[roomID]
	return r != nil && r.localAnnounced(pid)
}

// HasLocalMembers reports whether the room has participants on this edge.
func (s *Server) HasLocalMembers(roomID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[roomID]
	return r != nil && (len(r.members) > 0 || len(r.lobby) > 0)
}

// HasLocalSubscribers reports whether the room has admitted participants
// on this edge that may subscribe: they need the other edges' media (a
// publisher-only participant only needs their room events).
func (s *Server) HasLocalSubscribers(roomID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[roomID]
	if r == nil {
		return false
	}
	for _, m := range r.members {
		if m.perms.Subscribe && m.state != stateGone {
			return true
		}
	}
	return false
}

// Rooms lists the rooms with participants on this edge.
func (s *Server) Rooms() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.rooms))
	for id, r := range s.rooms {
		if len(r.members) > 0 || len(r.lobby) > 0 {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// Oldest says, for each room with somebody here, when the control plane
// issued the oldest ticket of its members and lobby guests (heartbeats
// carry it: the control plane compares it with the room's closes and
// removals, which only concern tickets issued before them). Both are the
// control plane's times: an edge whose clock is off still gets the orders
// it missed.
func (s *Server) Oldest() map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]time.Time, len(s.rooms))
	for id, r := range s.rooms {
		for _, ms := range [2]map[string]*member{r.members, r.lobby} {
			for _, m := range ms {
				if t, ok := out[id]; !ok || m.issued.Before(t) {
					out[id] = m.issued
				}
			}
		}
	}
	return out
}

// ModerateLocal carries out a moderator's action that arrived from another
// edge on one of this edge's participants.
func (s *Server) ModerateLocal(roomID, pid, action, kind string) bool {
	switch action {
	case edgeapi.ModerateMute:
		if kind != "audio" && kind != "video" {
			return false
		}
		return s.muteLocal(roomID, wire.MuteParticipant{ParticipantID: pid, Kind: kind})
	case edgeapi.ModerateRemove:
		return s.RemoveParticipant(roomID, pid, wire.ReasonRemoved)
	case edgeapi.ModerateAdmit, edgeapi.ModerateDeny:
		// Only for someone waiting here: a decision never reaches further.
		return s.decideLocal(roomID, wire.LobbyDecision{ParticipantID: pid, Admit: action == edgeapi.ModerateAdmit})
	}
	return false
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// movedAwayLocked keeps m, which left this edge for another one, listed
// as a remote participant whose leg is lost (origin "": none yet): the
// relay from its new edge takes it over without a join, and if none comes
// within RemoteGrace the room is told it left. s.mu held.
func (s *Server) movedAwayLocked(r *room, m *member) {
	if r.remotes == nil {
		r.remotes = map[string]*remoteMember{}
	}
	roomID, pid := m.roomID, m.id
	r.remotes[pid] = &remoteMember{id: pid, name: m.name, moderator: m.perms.Moderate,
		lost: time.AfterFunc(s.cfg.RemoteGrace, func() { s.RemoteLeft(roomID, "", pid, wire.ReasonLeft, false) })}
}

// clearRemotes stops the grace timers of a room that is going away. s.mu held.
func (r *room) clearRemotes() {
	for _, rm := range r.remotes {
		if rm.lost != nil {
			rm.lost.Stop()
		}
	}
	r.remotes = nil
}

// RoomsOf lists the rooms where pid is a participant (or waiting) on this edge.
func (s *Server) RoomsOf(pid string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id, r := range s.rooms {
		if r.members[pid] != nil || r.lobby[pid] != nil {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// Admitted lists join events for every connected participant here, for
// the control plane to record again after it lost this edge
// (re-registration). A member in its resume grace is left out: its client
// may have moved to another edge meanwhile, and the control plane
// attributes a participant to the edge that reported it last, so claiming
// it here would make the leave its new edge reports look stale. It is
// reported again if it resumes here (takeOver).
func (s *Server) Admitted() []edgeapi.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []edgeapi.Event
	now := s.now().UTC()
	for roomID, r := range s.rooms {
		for id, m := range r.members {
			switch {
			case !m.announced || m.state == stateGone:
			case m.state == stateGrace:
				m.unreported = true
			default:
				out = append(out, edgeapi.Event{ID: newEventID(), Kind: edgeapi.EventParticipantJoined, RoomID: roomID, ParticipantID: id, Name: m.name, At: now})
			}
		}
	}
	return out
}

// AskToReconnect tells every connected client to move to another edge
// (draining); it returns how many were asked.
func (s *Server) AskToReconnect(reason string, deadline time.Time) int {
	s.mu.Lock()
	var ms []*member
	for _, r := range s.rooms {
		for _, m := range r.members {
			if m.state == stateActive {
				ms = append(ms, m)
			}
		}
	}
	s.mu.Unlock()
	frame := wire.MustMarshal(wire.TypeReconnect, wire.Reconnect{Reason: reason, EdgeID: s.cfg.EdgeID, Deadline: deadline.UTC().Format(time.RFC3339)})
	for _, m := range ms {
		m.deliverNow(frame)
	}
	return len(ms)
}

// DisconnectAll closes every participant's connection (the end of a
// drain): clients that did not move when asked see their edge go and
// rejoin elsewhere; the room hears they left this edge.
func (s *Server) DisconnectAll() int {
	s.mu.Lock()
	var ms []*member
	for _, r := range s.rooms {
		for _, m := range r.members {
			ms = append(ms, m)
		}
		for _, m := range r.lobby {
			ms = append(ms, m)
		}
	}
	s.mu.Unlock()
	for _, m := range ms {
		s.leave(m, wire.ReasonLeft, nil, true)
	}
	return len(ms)
}

// ParticipantCount is the number of admitted participants on this edge.
func (s *Server) ParticipantCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.rooms {
		n += len(r.members) + len(r.lobby)
	}
	return n
}

// announceSince tells the room's other edges again about an announced
// member whose connection was renewed (a duplicate join took it over), so
// that one holding an older connection of the same id removes it.
func (s *Server) announceSince(m *member) {
	casc := s.cascade.get()
	s.mu.Lock()
	ok := m.announced && m.state == stateActive
	p := wire.Participant{ParticipantID: m.id, Name: m.name, Moderator: m.perms.Moderate, Tracks: []wire.TrackInfo{}}
	since := m.since
	s.mu.Unlock()
	if ok && casc != nil {
		casc.LocalJoined(m.roomID, edgeapi.CascadeParticipant{Participant: p, Since: since.UnixMilli()})
	}
}

// DuplicateElsewhere: pid has been connected to edge origin since `since`
// for a while (the cascade waited DuplicateGrace) while also admitted
// here. If the connection here is the older one, it is the duplicate: it
// is removed (`removed {reason: duplicate}`), as a duplicate join on one
// edge removes the older connection. A participant moving between edges
// is on both only until its client leaves the old edge, well within that
// wait; two tabs (or devices) with one id stay on both. The room sees no
// leave: the id stays present through origin, and the control plane
// already records it there (a leave from an edge it moved away from is
// ignored). Ties go against the edge with the smaller id, so exactly one
// side removes its connection.
func (s *Server) DuplicateElsewhere(roomID, pid, origin string, since time.Time) {
	s.mu.Lock()
	var m *member
	if r := s.rooms[roomID]; r != nil {
		m = r.members[pid]
	}
	older := m != nil && m.announced && m.state != stateGone && m.state != stateLobby &&
		(m.since.Before(since) || (m.since.Equal(since) && s.cfg.EdgeID < origin))
	s.mu.Unlock()
	if !older {
		return
	}
	s.log.Info("signal: removing a participant connected to another edge since later", "room", roomID, "participant", pid, "edge", origin)
	// "moved" for the room and the cascade (the others keep seeing it, now
	// through origin); `duplicate` for the client.
	s.leave(m, wire.ReasonMoved, wire.MustMarshal(wire.TypeRemoved, wire.Removed{Reason: wire.ReasonDuplicate}), true)
}
