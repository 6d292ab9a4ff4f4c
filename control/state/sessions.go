package state

import (
	"slices"
	"time"

	"github.com/hashicorp/go-memdb"
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
	// Removed: the last interval was ended by a removal through the API
	// (not a moderator's on the edge; cleared when the participant comes
	// back). An edge that missed the order is told again (MissedOrders).
	Removed bool `json:"removed,omitempty"`
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
		c.Participants[i] = p.clone()
	}
	return &c
}

func (p *SessionParticipant) clone() *SessionParticipant {
	c := *p
	c.Timelog = append([]Interval(nil), p.Timelog...)
	return &c
}

// intern shares the strings sessions repeat.
func (ss *Session) intern() {
	ss.UserID, ss.APIKey, ss.Region = intern(ss.UserID), intern(ss.APIKey), intern(ss.Region)
	for _, p := range ss.Participants {
		p.EdgeID = intern(p.EdgeID)
	}
}

// edit returns a new version of a stored session to change: the
// participant list is copied, the participants are shared until
// editParticipant copies one.
func (ss *Session) edit() *Session {
	c := *ss
	c.Participants = slices.Clone(ss.Participants)
	return &c
}

// editParticipant swaps participant id of an edited session for a private
// copy and returns it (nil if absent).
func (ss *Session) editParticipant(id string) *SessionParticipant {
	for i, p := range ss.Participants {
		if p.ParticipantID == id {
			c := p.clone()
			ss.Participants[i] = c
			return c
		}
	}
	return nil
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

// EmptySince is when the last participant of an ongoing session left, or
// nil while someone is in it.
func (ss *Session) EmptySince() *time.Time {
	var last *time.Time
	for _, p := range ss.Participants {
		if p.Active() {
			return nil
		}
		if n := len(p.Timelog); n > 0 && p.Timelog[n-1].End != nil && (last == nil || p.Timelog[n-1].End.After(*last)) {
			last = p.Timelog[n-1].End
		}
	}
	return last
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

// seen records an edge event id; false when it was applied before.
func (s *Store) seen(eventID string, index uint64, at time.Time) bool {
	if eventID == "" {
		return false
	}
	if one[*seenRow](s, tSeen, "id", eventID) != nil {
		return true
	}
	s.put(tSeen, &seenRow{ID: eventID, Index: index, At: at})
	return false
}

// Session counters: a project's sessions, by status, and a room's (the
// room index holds only its project's sessions; the counter is the
// project's, so another project's filter counts none).
func sessionsCounter(userID string) string { return "sessions/" + userID }

func sessionsStatusCounter(userID, status string) string { return "sessions/" + userID + "/" + status }

func sessionsRoomCounter(userID, roomDocID string) string {
	return "sessions/" + userID + "/room/" + roomDocID
}

// A project's sessions, and its sessions of a status, are also counted per
// UTC month, day and hour of their start: a date range's total is then a
// few dozen counter reads and a walk of at most an hour's sessions at
// each end of the range (sessionsBefore), not a walk of the range.
func sessionCounters(ss *Session) []string {
	if ss == nil {
		return nil
	}
	all, status := sessionsCounter(ss.UserID), sessionsStatusCounter(ss.UserID, ss.Status())
	out := []string{all, status, sessionsRoomCounter(ss.UserID, ss.RoomDocID)}
	for _, b := range startBuckets {
		key := b.key(ss.Start)
		out = append(out, all+key, status+key)
	}
	return out
}

// startBucket is one size of bucket sessions are counted in by start time.
type startBucket struct {
	tag    string // in the counter's name
	layout string // the bucket's start, formatted
	floor  func(time.Time) time.Time
	next   func(time.Time) time.Time
}

func (b startBucket) key(t time.Time) string {
	return b.tag + b.floor(t).Format(b.layout)
}

// startBuckets, largest first.
var startBuckets = []startBucket{
	{"/month/", "2006-01", func(t time.Time) time.Time {
		t = t.UTC()
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	}, func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }},
	{"/day/", "2006-01-02", func(t time.Time) time.Time {
		t = t.UTC()
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	}, func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }},
	{"/hour/", "2006-01-02T15", func(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) },
		func(t time.Time) time.Time { return t.Add(time.Hour) }},
}

// sessionsBefore counts the sessions of a list (the project's, under
// counter name base and index prefix, or of one status; listTotal of them)
// that started before t: whole months from the list's first session,
// whole days and hours up to t's hour, then a walk of t's hour from its
// nearer end. An instant outside the list's span costs nothing, so the
// loops are bounded by the span of the project's history, whatever the
// caller asks.
func (s *Store) sessionsBefore(base, index string, prefix []any, inList func(*Session) bool, listTotal int, t time.Time) int {
	first, _ := s.iter(tSessions, index, false, prefix...).Next().(*Session)
	if first == nil || !first.Start.Before(t) {
		return 0
	}
	if last, _ := s.iter(tSessions, index, true, prefix...).Next().(*Session); last.Start.Before(t) {
		return listTotal
	}
	n := 0
	from := startBuckets[0].floor(first.Start)
	for _, b := range startBuckets {
		end := b.floor(t)
		for ; from.Before(end); from = b.next(from) {
			n += s.counter(base + b.key(from))
		}
	}
	// The rest is in t's hour: walk its part before t, or, when t is in
	// the hour's second half, count the hour and walk its part from t on
	// back from the hour's end (half the walk where sessions are even).
	hour := startBuckets[len(startBuckets)-1]
	end := hour.next(from)
	back := t.Sub(from) > end.Sub(t)
	it, step := s.from(tSessions, index, false, append(prefix, from)...), 1
	if back {
		n += s.counter(base + hour.key(from))
		it, step = s.from(tSessions, index, true, append(prefix, end)...), -1
	}
	// Either walk ends at the first session on t's other side.
	for v := it.Next(); v != nil; v = it.Next() {
		ss := v.(*Session)
		if !inList(ss) || ss.Start.Before(t) == back {
			break
		}
		n += step
	}
	return n
}

// putSession stores a session version; old is the stored version it
// replaces (nil for a new session).
func (s *Store) putSession(old, ss *Session) {
	if old == nil || old.Status() != ss.Status() {
		s.recount(sessionCounters(old), sessionCounters(ss))
	}
	s.put(tSessions, ss)
}

func applyParticipantJoin(s *Store, index uint64, c *ParticipantJoin) (any, error) {
	if s.seen(c.EventID, index, c.At) {
		return nil, nil
	}
	r := s.roomByRoomID(c.RoomID)
	if r == nil {
		return nil, errf(CodeNotFound, "room %q not found", c.RoomID)
	}
	s.releaseSeat(r.RoomID, c.ParticipantID, index)
	ids := &idSource{ids: c.IDs, base: c.EventID}
	old := s.ongoingSession(r.ID)
	var ss *Session
	if old == nil {
		ss = &Session{ID: c.NewSessionID, RoomDocID: r.ID, RoomID: r.RoomID, CustomRoomID: r.CustomRoomID, UserID: r.UserID,
			APIKey: r.APIKey, Region: intern(c.Region), Start: c.At, CreateIndex: index}
		s.putSession(nil, ss)
		old = ss
		s.enqueue(index, r, ss.ID, ids.next(), "session-started", c.At, sessionStartedData{SessionID: ss.ID, MeetingID: r.RoomID, Start: WebhookTime(c.At)})
	}
	ss = old.edit()
	p := ss.editParticipant(c.ParticipantID)
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
		p.EdgeID = intern(c.EdgeID)
		ss.ModifyIndex = index
		s.putSession(old, ss)
		s.bump("sessions", index)
		return ss.clone(), nil
	}
	if c.Name != "" {
		p.Name = c.Name
	}
	p.EdgeID = intern(c.EdgeID)
	p.Removed = false
	p.Timelog = append(p.Timelog, Interval{Start: c.At})
	ss.ModifyIndex = index
	s.putSession(old, ss)
	s.bump("sessions", index)
	s.enqueue(index, r, ss.ID, ids.next(), "participant-joined", c.At, participantData{MeetingID: r.RoomID, SessionID: ss.ID, ParticipantID: p.ParticipantID, ParticipantName: p.Name})
	return ss.clone(), nil
}

func applyParticipantLeave(s *Store, index uint64, c *ParticipantLeave) (any, error) {
	if s.seen(c.EventID, index, c.At) {
		return nil, nil
	}
	r := s.roomByRoomID(c.RoomID)
	if r == nil {
		return nil, errf(CodeNotFound, "room %q not found", c.RoomID)
	}
	old := s.ongoingSession(r.ID)
	if old == nil {
		return nil, nil // late report after the session ended: nothing to close
	}
	cur := old.participant(c.ParticipantID)
	if cur == nil || !cur.Active() {
		return old.clone(), nil
	}
	if c.EdgeID != "" && cur.EdgeID != "" && c.EdgeID != cur.EdgeID {
		// The participant moved to another edge before this edge's report
		// arrived: the newer participation stays open.
		return old.clone(), nil
	}
	ss := old.edit()
	p := ss.editParticipant(c.ParticipantID)
	ids := &idSource{ids: c.IDs, base: c.EventID}
	s.closeParticipant(index, r, ss, p, c.At, ids)
	// Only a removal through the API is an order edges must carry out; an
	// edge's report of a removal (a moderator's, in the meeting) is one the
	// edge carried out itself, and its time is the edge's clock's.
	p.Removed = c.Reason == ReasonRemoved && c.EdgeID == ""
	if p.Removed {
		s.noteOrder(r.ID, *p.Timelog[len(p.Timelog)-1].End)
	}
	if last := ss.EmptySince(); last != nil && r.AutoCloseConfig == nil {
		// The session ends when its last participant left, which is not
		// always this one: a participation closed after its edge's rejoin
		// grace leaves at the moment the edge was declared down.
		s.finishSession(index, r, ss, *last, "last-participant-left", ids)
	}
	// With an autoCloseConfig the empty session stays open: whoever joins
	// within the duration continues it, and the leader's auto-close loop
	// ends it once it has been empty for that long.
	ss.ModifyIndex = index
	s.putSession(old, ss)
	s.bump("sessions", index)
	return ss.clone(), nil
}

func applyEndSession(s *Store, index uint64, c *EndSession) (any, error) {
	var old *Session
	if c.SessionID != "" {
		old = s.session(c.SessionID)
		if old == nil || old.UserID != c.UserID {
			return nil, errf(CodeNotFound, "session %q not found", c.SessionID)
		}
	} else {
		r, ok := s.lookupRoom(c.UserID, c.RoomRef)
		if !ok {
			return nil, errf(CodeNotFound, "room %q not found", c.RoomRef)
		}
		old = s.ongoingSession(r.ID)
		if old == nil {
			return nil, errf(CodeInvalid, "room %q has no ongoing session", c.RoomRef)
		}
	}
	if old.End != nil {
		return nil, errf(CodeInvalid, "session %q has already ended", old.ID)
	}
	r := s.roomByID(old.RoomDocID)
	ids := &idSource{ids: c.IDs, base: "end-" + old.ID}
	s.endSession(index, r, old, c.At, c.Reason, ids)
	// VideoSDK answers with the session as it was when the request arrived.
	return old.clone(), nil
}

// endSession closes every open participation of a stored session and ends
// it, in one new version; never before one of those participations ended.
func (s *Store) endSession(index uint64, r *Room, old *Session, at time.Time, reason string, ids *idSource) {
	ss := old.edit()
	end := at
	for _, cur := range old.Participants {
		if cur.Active() {
			if left := s.closeParticipant(index, r, ss, ss.editParticipant(cur.ParticipantID), at, ids); left.After(end) {
				end = left
			}
		}
	}
	s.finishSession(index, r, ss, end, reason, ids)
	if isClose(reason) {
		s.noteOrder(r.ID, end)
	}
	ss.ModifyIndex = index
	s.putSession(old, ss)
	s.bump("sessions", index)
}

// closeParticipant ends p's open interval at at, or at its start if at
// precedes it, and returns the end it recorded; ss and p are private copies.
// The times come from different clocks (an edge's join, the leader's
// sweep, an API call's arrival), and an interval that ended before it began
// would give a negative duration to every reader of the timeline.
func (s *Store) closeParticipant(index uint64, r *Room, ss *Session, p *SessionParticipant, at time.Time, ids *idSource) time.Time {
	iv := &p.Timelog[len(p.Timelog)-1]
	end := at
	if end.Before(iv.Start) {
		end = iv.Start
	}
	iv.End = &end
	if p.EdgeID != "" {
		s.touchHop(ss.ID, HopEdge, p.EdgeID, end)
	}
	s.enqueue(index, r, ss.ID, ids.next(), "participant-left", end, participantData{MeetingID: r.RoomID, SessionID: ss.ID, ParticipantID: p.ParticipantID, ParticipantName: p.Name})
	return end
}

// finishSession ends ss (a private copy, stored by the caller). A room set
// to deactivate when its session ends is disabled in the same command.
func (s *Store) finishSession(index uint64, r *Room, ss *Session, at time.Time, reason string, ids *idSource) {
	end := at
	ss.End = &end
	ss.EndReason = reason
	// The session-ended delivery carries the session id like the session's
	// other events, so the session's audit counts it. Versions before this
	// one enqueued it without; readers take the id from its body then
	// (Delivery.sessionOf), so every replica shows the same.
	s.enqueue(index, r, ss.ID, ids.next(), "session-ended", at, sessionEndedData{SessionID: ss.ID, MeetingID: r.RoomID, Start: WebhookTime(ss.Start), End: WebhookTime(at)})
	if r.AutoCloseConfig != nil && r.AutoCloseConfig.Type == "session-end-and-deactivate" && !r.Disabled {
		cur := s.roomByID(r.ID)
		nr := cur.clone()
		nr.Disabled = true
		nr.UpdatedAt = at
		nr.ModifyIndex = index
		s.putRoom(cur, nr)
		s.bump("rooms", index)
	}
}

// endOngoingSession is used by room deactivation; it returns the room's
// current version.
func (s *Store) endOngoingSession(index uint64, r *Room, at time.Time, reason string) *Room {
	old := s.ongoingSession(r.ID)
	if old == nil {
		return r
	}
	ids := &idSource{base: "deactivate-" + old.ID + "-" + itoa(int(index))}
	s.endSession(index, r, old, at, reason, ids)
	return s.roomByID(r.ID)
}

func (s *Store) session(id string) *Session { return one[*Session](s, tSessions, "id", id) }

func (s *Store) ongoingSession(roomDocID string) *Session {
	return one[*Session](s, tSessions, "ongoing", roomDocID)
}

// ActiveInSession counts the participants active in the room's ongoing
// session other than pid, and says whether pid is active there, without
// copying the session (the join API asks on every join of a capped room
// and of a guest who may only ask to join).
func (s *Store) ActiveInSession(roomDocID, pid string) (others int, self bool) {
	if ss := s.ongoingSession(roomDocID); ss != nil {
		for _, sp := range ss.Participants {
			switch {
			case !sp.Active():
			case sp.ParticipantID == pid:
				self = true
			default:
				others++
			}
		}
	}
	return others, self
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
	ss := s.session(id)
	if ss == nil || ss.UserID != userID {
		return nil, false
	}
	return ss.clone(), true
}

// SessionParticipants returns a project's session with one page of its
// participants (only those in the session now, with active) and how many
// there are: the session's other participants are not copied.
func (s *Store) SessionParticipants(userID, id string, active bool, p Page) (*Session, int, bool) {
	ss := s.session(id)
	if ss == nil || ss.UserID != userID {
		return nil, 0, false
	}
	head := *ss
	head.Participants = nil
	total := 0
	for _, sp := range ss.Participants {
		if active && !sp.Active() {
			continue
		}
		if total >= p.Offset && (p.Limit < 0 || len(head.Participants) < p.Limit) {
			head.Participants = append(head.Participants, sp.clone())
		}
		total++
	}
	return &head, total, true
}

// SessionFilter selects sessions for listing.
type SessionFilter struct {
	UserID      string
	RoomDocID   string // empty = all rooms
	Status      string // "", ongoing, ended
	StartAfter  *time.Time
	StartBefore *time.Time
}

// SessionsPage is a page of sessions, newest first (by start, then
// creation), and how many match. The walk uses the index that holds
// exactly the filter's project/status/room and stops after the page; the
// totals are counters. A room with a status needs no index of its own: a
// room has at most one ongoing session (the ongoing index), so its ended
// ones are the rest of the room's walk. A date range over the project's
// sessions (or one status's) is counted from the start-time buckets
// (sessionsInRange); within a room it walks the room's range and counts.
func (s *Store) SessionsPage(f SessionFilter, p Page) ([]*Session, int) {
	var (
		index  string
		prefix []any
		total  = -1
	)
	switch {
	case f.RoomDocID != "":
		index, prefix = "room", []any{f.RoomDocID}
		total = s.counter(sessionsRoomCounter(f.UserID, f.RoomDocID))
		if f.Status != "" && total > 0 && f.StartAfter == nil && f.StartBefore == nil {
			return s.roomSessionsByStatus(f, p, total)
		}
	case f.Status != "":
		index, prefix = "status", []any{f.UserID, f.Status}
		total = s.counter(sessionsStatusCounter(f.UserID, f.Status))
		if f.StartAfter != nil || f.StartBefore != nil {
			return s.sessionsInRange(f, p, sessionsStatusCounter(f.UserID, f.Status), index, prefix, total,
				func(ss *Session) bool { return ss.UserID == f.UserID && ss.Status() == f.Status })
		}
	default:
		index, prefix = "project", []any{f.UserID}
		total = s.counter(sessionsCounter(f.UserID))
		if f.StartAfter != nil || f.StartBefore != nil {
			return s.sessionsInRange(f, p, sessionsCounter(f.UserID), index, prefix, total,
				func(ss *Session) bool { return ss.UserID == f.UserID })
		}
	}
	var rows []*Session
	if total >= 0 && f.StartAfter == nil && f.StartBefore == nil {
		rows = window[*Session](s, tSessions, index, total, p, prefix...)
	} else {
		var it memdb.ResultIterator
		if f.StartBefore != nil {
			it = s.from(tSessions, index, true, append(prefix, *f.StartBefore, maxKey{})...)
		} else {
			it = s.iter(tSessions, index, true, prefix...)
		}
		inRange := func(ss *Session) bool {
			switch index {
			case "room":
				return ss.RoomDocID == f.RoomDocID
			case "status":
				return ss.UserID == f.UserID && ss.Status() == f.Status
			}
			return ss.UserID == f.UserID
		}
		rows, total = scan(it, p, true, func(ss *Session) (keep, stop bool) {
			// A range walk runs on past the prefix, and the index is in
			// start order: stop at the first row outside either.
			if !inRange(ss) || f.StartAfter != nil && ss.Start.Before(*f.StartAfter) {
				return false, true
			}
			return ss.UserID == f.UserID && (f.Status == "" || ss.Status() == f.Status), false
		})
	}
	return cloneSessions(rows), total
}

// sessionsInRange pages the sessions of a project's list (all, or one
// status; listTotal of them) that started within the filter's date range:
// the range's total from the bucket counters, the page walked from
// whichever end of the range is nearer.
func (s *Store) sessionsInRange(f SessionFilter, p Page, base, index string, prefix []any, listTotal int, inList func(*Session) bool) ([]*Session, int) {
	lo, hi := 0, listTotal // the range is positions [lo, hi) of the list, oldest first
	if f.StartAfter != nil {
		lo = s.sessionsBefore(base, index, prefix, inList, listTotal, *f.StartAfter)
	}
	if f.StartBefore != nil {
		hi = s.sessionsBefore(base, index, prefix, inList, listTotal, f.StartBefore.Add(time.Nanosecond))
	}
	total := max(hi-lo, 0)
	rows := windowBetween[*Session](total, p, func() memdb.ResultIterator {
		if f.StartBefore == nil {
			return s.iter(tSessions, index, true, prefix...)
		}
		return s.from(tSessions, index, true, append(prefix, *f.StartBefore, maxKey{})...)
	}, func() memdb.ResultIterator {
		if f.StartAfter == nil {
			return s.iter(tSessions, index, false, prefix...)
		}
		return s.from(tSessions, index, false, append(prefix, *f.StartAfter)...)
	})
	return cloneSessions(rows), total
}

// cloneSessions copies a page of stored sessions for the caller.
func cloneSessions(rows []*Session) []*Session {
	out := make([]*Session, len(rows))
	for i, ss := range rows {
		out[i] = ss.clone()
	}
	return out
}

// roomSessionsByStatus pages a room's sessions of one status; roomTotal is
// how many sessions the room has.
func (s *Store) roomSessionsByStatus(f SessionFilter, p Page, roomTotal int) ([]*Session, int) {
	live := s.ongoingSession(f.RoomDocID)
	if f.Status == "ongoing" {
		if live == nil || p.Offset > 0 || p.Limit == 0 {
			return nil, boolToInt(live != nil)
		}
		return []*Session{live.clone()}, 1
	}
	total := roomTotal - boolToInt(live != nil)
	if f.Status != "ended" {
		total = 0
	}
	if p.Offset >= total || p.Limit == 0 {
		return nil, total
	}
	// The walk skips at most the one ongoing session.
	rows, _ := scan(s.iter(tSessions, "room", true, f.RoomDocID), p, false, func(ss *Session) (bool, bool) { return ss.End != nil, false })
	return cloneSessions(rows), total
}

func boolToInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Sessions lists every session a filter selects, newest first (tests and
// callers with a room filter; lists use SessionsPage).
func (s *Store) Sessions(f SessionFilter) []*Session {
	out, _ := s.SessionsPage(f, Page{Limit: -1})
	return out
}

// OngoingSessions lists every live session (leader auto-close loop).
func (s *Store) OngoingSessions() []*Session {
	out := []*Session{}
	for _, ss := range all[*Session](s.iter(tSessions, "ongoing", false)) {
		out = append(out, ss.clone())
	}
	return out
}

// Participation is an active participant of an ongoing session, and the
// edge it is recorded on.
type Participation struct{ RoomID, ParticipantID, EdgeID string }

// ActiveOnEdges lists the active participations recorded on the edges on
// accepts, without copying the sessions (a dead edge's sweep, a restarted
// edge's registration).
func (s *Store) ActiveOnEdges(on func(edgeID string) bool) []Participation {
	var out []Participation
	it := s.iter(tSessions, "ongoing", false)
	for v := it.Next(); v != nil; v = it.Next() {
		ss := v.(*Session)
		for _, p := range ss.Participants {
			if p.Active() && p.EdgeID != "" && on(p.EdgeID) {
				out = append(out, Participation{RoomID: ss.RoomID, ParticipantID: p.ParticipantID, EdgeID: p.EdgeID})
			}
		}
	}
	return out
}

// OngoingCounts counts the live sessions and the participants in them
// without copying the sessions (the metrics gauges read it at every scrape).
func (s *Store) OngoingCounts() (sessions, participants int) {
	it := s.iter(tSessions, "ongoing", false)
	for v := it.Next(); v != nil; v = it.Next() {
		sessions++
		participants += v.(*Session).ActiveCount()
	}
	return sessions, participants
}
