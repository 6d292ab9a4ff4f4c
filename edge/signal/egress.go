package signal

import (
	wire "github.com/meridian-video/meridian/shared/signal"
)

// egressOrigins is the state of a room's egress jobs as one source sees
// them: "" for the jobs running on this edge.
type egressOrigins map[string]wire.EgressState

// merged is the room's state: recording (streaming) if any source records
// (streams).
func (o egressOrigins) merged() wire.EgressState {
	var st wire.EgressState
	for _, s := range o {
		st.Recording = st.Recording || s.Recording
		st.Streaming = st.Streaming || s.Streaming
	}
	return st
}

// egressCascade is the optional part of a Cascade that relays the state of
// this edge's own jobs to the room's other edges (edge/cascade.Manager).
type egressCascade interface {
	LocalEgress(roomID string, st wire.EgressState)
}

// SetEgress records whether a room is being recorded or streamed by the
// jobs of origin ("" = this edge's own jobs) and, when the room's state
// as its participants see it changes, tells every participant of the room
// on this edge (egress-state). Members that have not had their `joined`
// yet get the state in it. A change of this edge's own state also goes to
// the room's other edges through the Cascade; theirs arrive here with
// their edge id as origin. It never blocks on a client.
func (s *Server) SetEgress(roomID, origin string, st wire.EgressState) {
	s.mu.Lock()
	if s.egress == nil {
		s.egress = map[string]egressOrigins{}
	}
	o := s.egress[roomID]
	before, ownBefore := o.merged(), o[""]
	if st == (wire.EgressState{}) {
		delete(o, origin)
		if len(o) == 0 {
			delete(s.egress, roomID)
		}
	} else {
		if o == nil {
			o = egressOrigins{}
			s.egress[roomID] = o
		}
		o[origin] = st
	}
	after := o.merged()
	var targets []*member
	if after != before {
		targets = s.othersLocked(roomID, "")
	}
	s.mu.Unlock()
	if after != before {
		s.deliverAll(targets, wire.MustMarshal(wire.TypeEgressState, after))
	}
	if origin == "" && st != ownBefore {
		if ec, ok := s.cascade.get().(egressCascade); ok {
			ec.LocalEgress(roomID, st)
		}
	}
}

// OwnEgress is the room's state by this edge's own jobs (what a new
// cascade leg is told).
func (s *Server) OwnEgress(roomID string) wire.EgressState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.egress[roomID][""]
}

// Egress returns a room's recording and streaming state. s.mu not held.
func (s *Server) Egress(roomID string) wire.EgressState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.egress[roomID].merged()
}
