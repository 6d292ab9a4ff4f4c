package signal

import (
	"slices"
	"time"

	wire "github.com/meridian-video/meridian/shared/signal"
)

// A room's lobby across edges. Someone who may only ask to join waits in
// the lobby of the edge placement gave them, the one nearest to them; the
// room's moderators may all be on other edges. So who waits here is told
// to the room's other edges (lobbyCascade, then their RemoteLobby), their
// moderators get the lobby-request as if it were local, and a decision
// for someone waiting elsewhere goes to that edge (Cascade.Moderate with
// admit or deny, over the leg to that edge), whose lobby carries it out as
// for a local moderator.

// lobbyCascade is the optional part of a Cascade that tells the room's
// other edges who waits in this edge's lobby (edge/cascade.Manager).
type lobbyCascade interface {
	LocalLobby(roomID string, req wire.LobbyRequest)
	LocalLobbyGone(roomID, participantID string)
	// Decide sends a moderator's decision on pid to edge origin, whose
	// lobby pid waits in; false if that edge cannot be reached.
	Decide(roomID, origin, pid string, admit bool) bool
}

// remoteAsker waits in the lobby of another edge.
type remoteAsker struct {
	origin, name string
}

// announceLobby tells the room's other edges that req waits here.
func (s *Server) announceLobby(roomID string, req wire.LobbyRequest) {
	if lc, ok := s.cascade.get().(lobbyCascade); ok {
		lc.LocalLobby(roomID, req)
	}
}

// announceLobbyGone tells this edge's moderators and the room's other
// edges that pid no longer waits here.
func (s *Server) announceLobbyGone(roomID, pid string) {
	s.withdraw(roomID, pid)
	if lc, ok := s.cascade.get().(lobbyCascade); ok {
		lc.LocalLobbyGone(roomID, pid)
	}
}

// withdraw tells this edge's moderators that pid's request is no longer
// pending, so their lobby lists do not offer a decision nobody can take.
func (s *Server) withdraw(roomID, pid string) {
	s.mu.Lock()
	mods := s.moderatorsLocked(roomID)
	s.mu.Unlock()
	msg := wire.MustMarshal(wire.TypeLobbyWithdrawn, wire.LobbyWithdrawn{ParticipantID: pid})
	for _, mod := range mods {
		mod.deliverNow(msg)
	}
}

// LobbyRequests lists who waits in this edge's lobby for the room (what a
// new cascade leg is told).
func (s *Server) LobbyRequests(roomID string) []wire.LobbyRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []wire.LobbyRequest
	if r := s.rooms[roomID]; r != nil {
		for id, m := range r.lobby {
			if m.state == stateLobby {
				out = append(out, wire.LobbyRequest{ParticipantID: id, Name: m.name})
			}
		}
	}
	slices.SortFunc(out, func(a, b wire.LobbyRequest) int { return cmpString(a.ParticipantID, b.ParticipantID) })
	return out
}

// RemoteLobby records that req waits in the lobby of edge origin and asks
// this edge's moderators, as a local request would; once per request (a
// request can arrive both in a leg's welcome and right after it).
func (s *Server) RemoteLobby(roomID, origin string, req wire.LobbyRequest) {
	if req.ParticipantID == "" {
		return
	}
	s.mu.Lock()
	r := s.roomLocked(roomID) // the leg's welcome can come before this edge's first participant
	if r.asking == nil {
		r.asking = map[string]remoteAsker{}
	}
	a := remoteAsker{origin: origin, name: req.Name}
	if r.asking[req.ParticipantID] == a {
		s.mu.Unlock()
		return
	}
	r.asking[req.ParticipantID] = a
	if s.admittedLocked(r, req.ParticipantID) {
		// Admitted here moments ago; that decision went to an edge the
		// guest has since left.
		s.mu.Unlock()
		if lc, ok := s.cascade.get().(lobbyCascade); ok {
			lc.Decide(roomID, origin, req.ParticipantID, true)
		}
		return
	}
	mods := s.moderatorsLocked(roomID)
	s.mu.Unlock()
	msg := wire.MustMarshal(wire.TypeLobbyRequest, req)
	for _, mod := range mods {
		mod.deliverNow(msg)
	}
}

// RemoteLobbyGone forgets that pid waits in the lobby of edge origin (it
// was admitted or denied there, left, or its edge's leg is gone). A newer
// request of pid through another edge stays.
func (s *Server) RemoteLobbyGone(roomID, origin, pid string) {
	s.mu.Lock()
	r := s.rooms[roomID]
	if r == nil || r.asking[pid].origin != origin {
		s.mu.Unlock()
		return
	}
	delete(r.asking, pid)
	if r.empty() {
		delete(s.rooms, roomID)
	}
	s.mu.Unlock()
	s.withdraw(roomID, pid)
}

// ForgetLobby forgets everyone waiting in the lobby of edge origin: the
// leg to it ended, so a decision could not reach them; its next welcome
// says again who waits there.
func (s *Server) ForgetLobby(roomID, origin string) { s.SetLobby(roomID, origin, nil) }

// decideRemote sends a moderator's decision to the edge pid waits on;
// false if pid waits on no edge this one knows of.
func (s *Server) decideRemote(roomID string, d wire.LobbyDecision) bool {
	s.mu.Lock()
	var a remoteAsker
	var waits bool
	r := s.rooms[roomID]
	if r != nil {
		a, waits = r.asking[d.ParticipantID]
	}
	s.mu.Unlock()
	lc, ok := s.cascade.get().(lobbyCascade)
	if !waits || !ok || !lc.Decide(roomID, a.origin, d.ParticipantID, d.Admit) {
		return false
	}
	if d.Admit {
		s.mu.Lock()
		if r := s.rooms[roomID]; r != nil {
			if r.admitted == nil {
				r.admitted = map[string]time.Time{}
			}
			r.admitted[d.ParticipantID] = s.now()
		}
		s.mu.Unlock()
	}
	return true
}

// admitMemory is how long a moderator's admit of someone waiting on
// another edge holds for that participant: the edge it waited on may have
// stalled just as the decision went to it (the decision is then lost), and
// the guest, hearing nothing, asks again through another edge within
// seconds. Its new request is admitted at once instead of asking the
// moderators again. Denials are not remembered (asked again, they cost a
// second click, not a wrongly refused guest), and an admit is forgotten
// once the guest is in the room: one that leaves or is removed asks again.
const admitMemory = 30 * time.Second

// admittedLocked reports whether a moderator here admitted pid within
// admitMemory, forgetting older admits. s.mu held.
func (s *Server) admittedLocked(r *room, pid string) bool {
	now := s.now()
	for id, at := range r.admitted {
		if now.Sub(at) >= admitMemory {
			delete(r.admitted, id)
		}
	}
	_, ok := r.admitted[pid]
	return ok
}

// SetLobby makes who waits in the lobby of edge origin what a leg's
// welcome lists: the ones no longer listed are withdrawn, new ones asked
// (those already known are not asked again, so a leg that redials does not
// make moderators' lists flicker).
func (s *Server) SetLobby(roomID, origin string, reqs []wire.LobbyRequest) {
	listed := make(map[string]bool, len(reqs))
	for _, req := range reqs {
		listed[req.ParticipantID] = true
	}
	s.mu.Lock()
	var gone []string
	if r := s.rooms[roomID]; r != nil {
		for pid, a := range r.asking {
			if a.origin == origin && !listed[pid] {
				delete(r.asking, pid)
				gone = append(gone, pid)
			}
		}
		if r.empty() {
			delete(s.rooms, roomID)
		}
	}
	s.mu.Unlock()
	for _, pid := range gone {
		s.withdraw(roomID, pid)
	}
	for _, req := range reqs {
		s.RemoteLobby(roomID, origin, req)
	}
}
