package state

import (
	"sort"
	"time"
)

// Interval is one join→leave span; End is nil while open.
type Interval struct {
	Start time.Time  `json:"start"`
	End   *time.Time `json:"end"`
}

// SessionParticipant is one participant's history within a session.
type SessionParticipant struct {
	DocID         string     `json:"_id"`
	ParticipantID string     `json:"participantId"`
	Name          string     `json:"name"`
	EdgeID        string     `json:"edgeId,omitempty"`
	Timelog       []Interval `json:"timelog"`
}

// Active reports whether the participant is in the session now.
func (p *SessionParticipant) Active() bool {
	n := len(p.Timelog)
	return n > 0 && p.Timelog[n-1].End == nil
}

// Session is one live occupancy of a room.
type Session struct {
	ID           string                `json:"id"`
	RoomDocID    string                `json:"roomDocId"`
	RoomID       string                `json:"roomId"`
	CustomRoomID string                `json:"customRoomId,omitempty"`
	UserID       string                `json:"userId"`
	APIKey       string                `json:"apiKey"`
	Region       string                `json:"region,omitempty"`
	Start        time.Time             `json:"start"`
	End          *time.Time            `json:"end"`
	EndReason    string                `json:"endReason,omitempty"`
	Participants []*SessionParticipant `json:"participants"`
	CreateIndex  uint64                `json:"createIndex"`
	ModifyIndex  uint64                `json:"modifyIndex"`
}

// Status is "ongoing" or "ended".
func (ss *Session) Status() string {
	if ss.End == nil {
		return "ongoing"
	}
	return "ended"
}

func (ss *Session) clone() *Session {
	c := *ss
	c.Participants = make([]*SessionParticipant, len(ss.Participants))
	for i, p := range ss.Participants {
		pc := *p
		pc.Timelog = append([]Interval(nil), p.Timelog...)
		c.Participants[i] = &pc
	}
	return &c
}

func (ss *Session) participant(id string) *SessionParticipant {
	for _, p := range ss.Participants {
		if p.ParticipantID == id {
			return p
		}
	}
	return nil
}

// ActiveCount is the number of participants in the session now.
func (ss *Session) ActiveCount() int {
	n := 0
	for _, p := range ss.Participants {
		if p.Active() {
			n++
		}
	}
	return n
}

// ParticipantJoin records a join reported by an edge. The leader pre-fills
// ids so Apply stays deterministic; EventID dedupes an edge's retries.
type ParticipantJoin struct {
	EventID       string    `json:"eventId"`
	RoomID        string    `json:"roomId"`
	ParticipantID string    `json:"participantId"`
	Name          string    `json:"name"`
	EdgeID        string    `json:"edgeId"`
	Region        string    `json:"region,omitempty"`
	At            time.Time `json:"at"`
	NewSessionID  string    `json:"newSessionId"`
	NewDocID      string    `json:"newDocId"`
	IDs           []string  `json:"ids"` // webhook event ids, used in order
}

// ParticipantLeave records a leave (or a kick) reported by an edge.
type ParticipantLeave struct {
	EventID       string `json:"eventId"`
	RoomID        string `json:"roomId"`
	ParticipantID string `json:"participantId"`
	// EdgeID is the reporting edge: a leave from an edge the participant
	// has since moved away from (failover, drain) changes nothing.
	EdgeID string    `json:"edgeId,omitempty"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
	IDs    []string  `json:"ids"`
}

// EndSession closes a session (API call, auto-close, deactivation).
type EndSession struct {
	UserID    string    `json:"userId"`
	RoomRef   string    `json:"roomRef"`
	SessionID string    `json:"sessionId,omitempty"`
	Reason    string    `json:"reason"`
	At        time.Time `json:"at"`
	IDs       []string  `json:"ids"`
}

func init() {
	register(CmdParticipantJoin, applyParticipantJoin)
	register(CmdParticipantLeave, applyParticipantLeave)
	register(CmdEndSession, applyEndSession)
}

// idSource hands out pre-generated ids in order; running out is a proposer bug
// that would make replicas disagree, so it derives a stable fallback instead.
type idSource struct {
	ids  []string
	base string
	n    int
}

func (g *idSource) next() string {
	g.n++
	if g.n <= len(g.ids) {
		return g.ids[g.n-1]
	}
	return g.base + "-" + itoa(g.n)
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

func applyParticipantJoin(s *Store, index uint64, c *ParticipantJoin) (any, error) {
	if c.EventID != "" {
		if _, dup := s.seenEvents[c.EventID]; dup {
			return nil, nil
		}
		s.seenEvents[c.EventID] = index
	}
	id, ok := s.roomByRoomID[c.RoomID]
	if !ok {
		return nil, errf(CodeNotFound, "room %q not found", c.RoomID)
	}
	r := s.rooms[id]
	ids := &idSource{ids: c.IDs, base: c.EventID}
	ss := s.ongoingSession(r.ID)
	if ss == nil {
		ss = &Session{ID: c.NewSessionID, RoomDocID: r.ID, RoomID: r.RoomID, CustomRoomID: r.CustomRoomID, UserID: r.UserID,
			APIKey: r.APIKey, Region: c.Region, Start: c.At, CreateIndex: index}
		s.sessions[ss.ID] = ss
		s.ongoing[r.ID] = ss.ID
		s.enqueue(index, r, ids.next(), "session-started", c.At, sessionStartedData{SessionID: ss.ID, MeetingID: r.RoomID, Start: WebhookTime(c.At)})
	}
	p := ss.participant(c.ParticipantID)
	if p == nil {
		p = &SessionParticipant{DocID: c.NewDocID, ParticipantID: c.ParticipantID, Name: c.Name}
		ss.Participants = append(ss.Participants, p)
	}
	if c.EdgeID != "" {
		s.noteHop(ss.ID, AuditHop{Kind: HopEdge, EdgeID: c.EdgeID, Region: c.Region, First: c.At, Last: c.At})
	}
	if p.Active() {
		// A duplicate join (reconnect on another edge) keeps the open interval.
		if p.EdgeID != "" && p.EdgeID != c.EdgeID {
			s.touchHop(ss.ID, HopEdge, p.EdgeID, c.At)
		}
		p.EdgeID = c.EdgeID
		ss.ModifyIndex = index
		s.bump("sessions", index)
		return ss.clone(), nil
	}
	if c.Name != "" {
		p.Name = c.Name
	}
	p.EdgeID = c.EdgeID
	p.Timelog = append(p.Timelog, Interval{Start: c.At})
	ss.ModifyIndex = index
	s.bump("sessions", index)
	s.enqueue(index, r, ids.next(), "participant-joined", c.At, participantData{MeetingID: r.RoomID, SessionID: ss.ID, ParticipantID: p.ParticipantID, ParticipantName: p.Name})
	return ss.clone(), nil
}

func applyParticipantLeave(s *Store, index uint64, c *ParticipantLeave) (any, error) {
	if c.EventID != "" {
		if _, dup := s.seenEvents[c.EventID]; dup {
			return nil, nil
		}
		s.seenEvents[c.EventID] = index
	}
	id, ok := s.roomByRoomID[c.RoomID]
	if !ok {
		return nil, errf(CodeNotFound, "room %q not found", c.RoomID)
	}
	r := s.rooms[id]
	ss := s.ongoingSession(r.ID)
	if ss == nil {
		return nil, nil // late report after the session ended: nothing to close
	}
	p := ss.participant(c.ParticipantID)
	if p == nil || !p.Active() {
		return ss.clone(), nil
	}
	if c.EdgeID != "" && p.EdgeID != "" && c.EdgeID != p.EdgeID {
		// The participant moved to another edge before this edge's report
		// arrived: the newer participation stays open.
		return ss.clone(), nil
	}
	ids := &idSource{ids: c.IDs, base: c.EventID}
	s.closeParticipant(index, r, ss, p, c.At, ids)
	if ss.ActiveCount() == 0 {
		s.finishSession(index, r, ss, c.At, "last-participant-left", ids)
	}
	ss.ModifyIndex = index
	s.bump("sessions", index)
	return ss.clone(), nil
}

func applyEndSession(s *Store, index uint64, c *EndSession) (any, error) {
	var ss *Session
	if c.SessionID != "" {
		ss = s.sessions[c.SessionID]
		if ss == nil || ss.UserID != c.UserID {
			return nil, errf(CodeNotFound, "session %q not found", c.SessionID)
		}
	} else {
		r, ok := s.lookupRoom(c.UserID, c.RoomRef)
		if !ok {
			return nil, errf(CodeNotFound, "room %q not found", c.RoomRef)
		}
		ss = s.ongoingSession(r.ID)
		if ss == nil {
			return nil, errf(CodeInvalid, "room %q has no ongoing session", c.RoomRef)
		}
	}
	if ss.End != nil {
		return nil, errf(CodeInvalid, "session %q has already ended", ss.ID)
	}
	before := ss.clone()
	r := s.rooms[ss.RoomDocID]
	ids := &idSource{ids: c.IDs, base: "end-" + ss.ID}
	for _, p := range ss.Participants {
		if p.Active() {
			s.closeParticipant(index, r, ss, p, c.At, ids)
		}
	}
	s.finishSession(index, r, ss, c.At, c.Reason, ids)
	ss.ModifyIndex = index
	s.bump("sessions", index)
	// VideoSDK answers with the session as it was when the request arrived.
	return before, nil
}

func (s *Store) closeParticipant(index uint64, r *Room, ss *Session, p *SessionParticipant, at time.Time, ids *idSource) {
	end := at
	p.Timelog[len(p.Timelog)-1].End = &end
	if p.EdgeID != "" {
		s.touchHop(ss.ID, HopEdge, p.EdgeID, at)
	}
	s.enqueue(index, r, ids.next(), "participant-left", at, participantData{MeetingID: r.RoomID, SessionID: ss.ID, ParticipantID: p.ParticipantID, ParticipantName: p.Name})
}

func (s *Store) finishSession(index uint64, r *Room, ss *Session, at time.Time, reason string, ids *idSource) {
	end := at
	ss.End = &end
	ss.EndReason = reason
	delete(s.ongoing, r.ID)
	s.enqueue(index, r, ids.next(), "session-ended", at, sessionEndedData{SessionID: ss.ID, MeetingID: r.RoomID, Start: WebhookTime(ss.Start), End: WebhookTime(at)})
	if r.AutoCloseConfig != nil && r.AutoCloseConfig.Type == "session-end-and-deactivate" && !r.Disabled {
		r.Disabled = true
		r.UpdatedAt = at
		r.ModifyIndex = index
		s.bump("rooms", index)
	}
}

// endOngoingSession is used by room deactivation.
func (s *Store) endOngoingSession(index uint64, r *Room, at time.Time, reason string) {
	ss := s.ongoingSession(r.ID)
	if ss == nil {
		return
	}
	ids := &idSource{base: "deactivate-" + ss.ID + "-" + itoa(int(index))}
	for _, p := range ss.Participants {
		if p.Active() {
			s.closeParticipant(index, r, ss, p, at, ids)
		}
	}
	s.finishSession(index, r, ss, at, reason, ids)
	ss.ModifyIndex = index
	s.bump("sessions", index)
}

func (s *Store) ongoingSession(roomDocID string) *Session {
	id, ok := s.ongoing[roomDocID]
	if !ok {
		return nil
	}
	return s.sessions[id]
}

// OngoingSession returns the room's live session, if any.
func (s *Store) OngoingSession(roomDocID string) (*Session, bool) {
	ss := s.ongoingSession(roomDocID)
	if ss == nil {
		return nil, false
	}
	return ss.clone(), true
}

// Session returns a project's session by id.
func (s *Store) Session(userID, id string) (*Session, bool) {
	ss, ok := s.sessions[id]
	if !ok || ss.UserID != userID {
		return nil, false
	}
	return ss.clone(), true
}

// SessionFilter selects sessions for listing.
type SessionFilter struct {
	UserID      string
	RoomDocID   string // empty = all rooms
	Status      string // "", ongoing, ended
	StartAfter  *time.Time
	StartBefore *time.Time
}

// Sessions lists sessions, newest first.
func (s *Store) Sessions(f SessionFilter) []*Session {
	var out []*Session
	for _, ss := range s.sessions {
		if ss.UserID != f.UserID || (f.RoomDocID != "" && ss.RoomDocID != f.RoomDocID) {
			continue
		}
		if f.Status != "" && ss.Status() != f.Status {
			continue
		}
		if f.StartAfter != nil && ss.Start.Before(*f.StartAfter) {
			continue
		}
		if f.StartBefore != nil && ss.Start.After(*f.StartBefore) {
			continue
		}
		out = append(out, ss.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreateIndex > out[j].CreateIndex })
	return out
}

// OngoingSessions lists every live session (leader auto-close loop).
func (s *Store) OngoingSessions() []*Session {
	out := make([]*Session, 0, len(s.ongoing))
	for _, id := range sortedKeys(s.ongoing) {
		out = append(out, s.sessions[s.ongoing[id]].clone())
	}
	return out
}
