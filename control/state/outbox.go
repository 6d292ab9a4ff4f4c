package state

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/meridian-video/meridian/control/webhooks"
)

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// Delivery is one webhook event bound for one endpoint. It is written in the
// same command that changes the state it describes, so an event can never be
// lost between the change and the queue.
type Delivery struct {
	ID           string          `json:"id"` // webhook-id, stable across retries
	EventID      string          `json:"eventId"`
	EventType    string          `json:"eventType"`
	RoomID       string          `json:"roomId"` // ordering key
	SessionID    string          `json:"sessionId,omitempty"`
	UserID       string          `json:"userId"`
	APIKey       string          `json:"apiKey"` // whose whsec_ secret signs it
	URL          string          `json:"url"`
	Body         json.RawMessage `json:"body"` // exact bytes sent
	CreatedAt    time.Time       `json:"createdAt"`
	Status       string          `json:"status"`
	Attempts     int             `json:"attempts"`
	NextAttempt  time.Time       `json:"nextAttempt"`
	LastStatus   int             `json:"lastStatus,omitempty"`
	LastError    string          `json:"lastError,omitempty"`
	LatencyMs    int64           `json:"latencyMs,omitempty"`
	DoneAt       *time.Time      `json:"doneAt,omitempty"`
	LastAttempt  *time.Time      `json:"lastAttempt,omitempty"`
	Redelivered  *time.Time      `json:"redelivered,omitempty"`
	EndpointGone bool            `json:"endpointGone,omitempty"`
	// SentFrom is the control node (and its region) that made the last
	// attempt: webhook payloads leave from there (sovereignty audit).
	SentFrom       string `json:"sentFrom,omitempty"`
	SentFromRegion string `json:"sentFromRegion,omitempty"`
	Seq            uint64 `json:"seq"` // raft index at enqueue: global order
	// Sub orders the deliveries one command enqueued (snapshot v2; a v1
	// snapshot lists them in order and restore numbers them).
	Sub         uint32 `json:"sub,omitempty"`
	CreateIndex uint64 `json:"createIndex"`
	ModifyIndex uint64 `json:"modifyIndex"`
}

func (d *Delivery) clone() *Delivery { c := *d; return &c }

// sessionOf is the session whose event d delivers ("" for none). Versions
// before the session-ended delivery carried its session id enqueued it
// without; its body names the session.
func (d *Delivery) sessionOf() string {
	if d.SessionID != "" || d.EventType != "session-ended" {
		return d.SessionID
	}
	var env struct {
		Data struct {
			SessionID string `json:"sessionId"`
		} `json:"data"`
	}
	if json.Unmarshal(d.Body, &env) != nil {
		return ""
	}
	return env.Data.SessionID
}

// view is the copy of d readers get: a session-ended delivery stored
// without its session id shows the one of its body.
func (d *Delivery) view() *Delivery {
	c := d.clone()
	c.SessionID = d.sessionOf()
	return c
}

// intern shares the strings deliveries repeat.
func (d *Delivery) intern() {
	d.EventType, d.UserID, d.APIKey, d.URL = intern(d.EventType), intern(d.UserID), intern(d.APIKey), intern(d.URL)
	d.SentFrom, d.SentFromRegion = intern(d.SentFrom), intern(d.SentFromRegion)
}

// finishedAt is when a delivered or failed delivery finished (retention
// keeps finished deliveries for the retention period after it).
func (d *Delivery) finishedAt() time.Time {
	switch {
	case d.DoneAt != nil:
		return *d.DoneAt
	case d.LastAttempt != nil:
		return *d.LastAttempt
	}
	return d.CreatedAt
}

// GlobalEndpoint is an operator-configured webhook target for every room.
type GlobalEndpoint struct {
	URL    string   `json:"url"`
	Events []string `json:"events,omitempty"`
}

// SetGlobalEndpoints replaces the operator's endpoints (the leader proposes
// them from its configuration when it establishes leadership).
type SetGlobalEndpoints struct {
	Endpoints []GlobalEndpoint `json:"endpoints"`
}

// RecordDelivery stores an attempt's outcome. Attempts counts this attempt;
// a report whose count is not the stored count + 1 is stale (an old leader's
// attempt, or one that raced a redelivery) and is ignored. One exception: a
// delivery failed unattempted because another delivery's 410 Gone failed
// what was queued for the endpoint takes the outcome of an attempt that had
// started before (it is recorded as it was, and not retried).
//
// With Starting, it announces an attempt instead, before it is made:
// Attempts is then the count so far (so versions that do not know Starting
// ignore it as stale), and SentFrom the node about to send. It only lists
// that node among the webhook origins of the delivery's session
// (Audit.Webhooks), which a node that dies during the attempt could
// otherwise never record.
type RecordDelivery struct {
	ID             string     `json:"id"`
	AttemptedAt    time.Time  `json:"attemptedAt"`
	EndpointGone   bool       `json:"endpointGone,omitempty"`
	Status         string     `json:"status"`
	Attempts       int        `json:"attempts"`
	NextAttempt    time.Time  `json:"nextAttempt"`
	LastStatus     int        `json:"lastStatus"`
	LastError      string     `json:"lastError"`
	LatencyMs      int64      `json:"latencyMs"`
	DoneAt         *time.Time `json:"doneAt,omitempty"`
	SentFrom       string     `json:"sentFrom,omitempty"`
	SentFromRegion string     `json:"sentFromRegion,omitempty"`
	Starting       bool       `json:"starting,omitempty"`
}

// goneSweepError is the error of the deliveries a 410 Gone from their
// endpoint failed before they were attempted (RecordDelivery).
const goneSweepError = "endpoint answered 410 Gone"

// sweptByGone: failed, without an attempt since, by another delivery's 410.
func (d *Delivery) sweptByGone() bool {
	return d.Status == DeliveryFailed && d.LastError == goneSweepError
}

// Redeliver puts a finished delivery back in the queue.
type Redeliver struct {
	UserID string    `json:"userId"`
	ID     string    `json:"id"`
	At     time.Time `json:"at"`
}

// EnqueueEvent is an event raised outside session bookkeeping (egress jobs,
// tests): its data is already the compact JSON object for the payload.
type EnqueueEvent struct {
	RoomID    string          `json:"roomId"`
	EventID   string          `json:"eventId"`
	EventType string          `json:"eventType"`
	Data      json.RawMessage `json:"data"`
	ExtraURL  string          `json:"extraUrl,omitempty"` // per-job webhookUrl
	At        time.Time       `json:"at"`
}

// EnqueueEvents enqueues several events atomically.
type EnqueueEvents struct {
	Events []EnqueueEvent `json:"events"`
}

func init() {
	register(CmdSetGlobalEndpoints, func(s *Store, index uint64, c *SetGlobalEndpoints) (any, error) {
		s.put(tMeta, &metaRow{Name: metaGlobal, Value: append([]GlobalEndpoint(nil), c.Endpoints...)})
		s.bump("outbox", index)
		return nil, nil
	})
	register(CmdRecordDelivery, func(s *Store, index uint64, c *RecordDelivery) (any, error) {
		old := s.delivery(c.ID)
		if old == nil {
			return nil, errf(CodeNotFound, "delivery %q not found", c.ID)
		}
		if c.Starting {
			if old.Status == DeliveryPending && c.Attempts == old.Attempts && c.SentFrom != "" {
				if sid := old.sessionOf(); sid != "" && s.session(sid) != nil {
					s.noteWebhookStart(sid, intern(c.SentFrom), intern(c.SentFromRegion), c.ID, c.Attempts+1, c.AttemptedAt)
				}
			}
			return old.clone(), nil
		}
		swept := old.sweptByGone()
		if old.Status != DeliveryPending && !swept || c.Attempts != old.Attempts+1 {
			return old.clone(), nil // a stale report from an old leader's attempt
		}
		d := old.clone()
		at := c.AttemptedAt
		d.LastAttempt = &at
		d.EndpointGone = c.EndpointGone
		d.Status, d.Attempts, d.NextAttempt = c.Status, c.Attempts, c.NextAttempt
		d.LastStatus, d.LastError, d.LatencyMs, d.DoneAt = c.LastStatus, c.LastError, c.LatencyMs, c.DoneAt
		if swept && c.Status == DeliveryPending {
			// The attempt was under way when another delivery's 410 failed
			// this one: it went out, but is not retried.
			d.Status, d.NextAttempt, d.DoneAt = DeliveryFailed, old.NextAttempt, old.DoneAt
			d.LastError = c.LastError + "; not retried: the endpoint answered 410 Gone"
		}
		if c.SentFrom != "" {
			d.SentFrom, d.SentFromRegion = intern(c.SentFrom), intern(c.SentFromRegion)
			if sid := d.sessionOf(); sid != "" {
				s.noteWebhookOutcome(sid, c.SentFrom, c.ID, c.Attempts, c.AttemptedAt)
			}
		}
		d.ModifyIndex = index
		s.putDelivery(old, d)
		if c.EndpointGone {
			// 410 Gone: the receiver asked us to stop. Fail what is queued for
			// that endpoint and enqueue nothing more for it until a room is
			// (re)configured with it.
			s.put(tGone, &goneRow{Key: goneKey(d.UserID, d.URL), Index: index})
			for _, other := range all[*Delivery](s.iter(tOutbox, "pendingURL", false, d.UserID, d.URL)) {
				o := other.clone()
				o.Status = DeliveryFailed
				o.LastError = goneSweepError
				o.DoneAt = c.DoneAt
				o.ModifyIndex = index
				s.putDelivery(other, o)
			}
		}
		s.bump("outbox", index)
		return d.clone(), nil
	})
	register(CmdRedeliver, func(s *Store, index uint64, c *Redeliver) (any, error) {
		old := s.delivery(c.ID)
		if old == nil || old.UserID != c.UserID {
			return nil, errf(CodeNotFound, "delivery %q not found", c.ID)
		}
		if old.Status == DeliveryPending {
			return nil, errf(CodeConflict, "delivery %q is still pending", c.ID)
		}
		d := old.clone()
		d.Status = DeliveryPending
		d.NextAttempt = c.At
		at := c.At
		d.Redelivered = &at
		d.DoneAt = nil
		d.LastError = ""
		d.EndpointGone = false
		d.ModifyIndex = index
		s.putDelivery(old, d)
		s.bump("outbox", index)
		return d.clone(), nil
	})
	register(CmdEnqueueEvents, func(s *Store, index uint64, c *EnqueueEvents) (any, error) {
		for _, ev := range c.Events {
			r := s.roomByRoomID(ev.RoomID)
			if r == nil {
				return nil, errf(CodeNotFound, "room %q not found", ev.RoomID)
			}
			var sessionID string
			if ss := s.ongoingSession(r.ID); ss != nil {
				sessionID = ss.ID
			}
			s.enqueueRaw(index, r, sessionID, ev.EventID, ev.EventType, ev.At, ev.Data, ev.ExtraURL)
		}
		return nil, nil
	})
}

// Delivery counters: a project's deliveries, by status, and those of a
// room, an event type or an endpoint URL: one per list index (the value
// comes last, so any URL keeps the name unambiguous).
func deliveriesCounter(userID string) string { return "outbox/" + userID }

func deliveriesStatusCounter(userID, status string) string { return "outbox/" + userID + "/" + status }

func deliveriesFieldCounter(userID, field, value string) string {
	return "outbox/" + userID + "/" + field + "/" + value
}

func deliveryCounters(d *Delivery) []string {
	if d == nil {
		return nil
	}
	return []string{deliveriesCounter(d.UserID), deliveriesStatusCounter(d.UserID, d.Status),
		deliveriesFieldCounter(d.UserID, "room", d.RoomID), deliveriesFieldCounter(d.UserID, "event", d.EventType),
		deliveriesFieldCounter(d.UserID, "url", d.URL)}
}

// putDelivery stores a delivery version; old is the stored one it replaces.
func (s *Store) putDelivery(old, d *Delivery) {
	if old == nil || old.Status != d.Status {
		s.recount(deliveryCounters(old), deliveryCounters(d))
	}
	s.put(tOutbox, d)
}

func (s *Store) delivery(id string) *Delivery { return one[*Delivery](s, tOutbox, "id", id) }

// WebhookTime renders an instant the way VideoSDK webhook payloads do.
func WebhookTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000+00:00") }

// Payload data objects, fields in the documented order.
type sessionStartedData struct {
	SessionID string `json:"sessionId"`
	MeetingID string `json:"meetingId"`
	Start     string `json:"start"`
}

type sessionEndedData struct {
	SessionID string `json:"sessionId"`
	MeetingID string `json:"meetingId"`
	Start     string `json:"start"`
	End       string `json:"end"`
}

type participantData struct {
	MeetingID       string `json:"meetingId"`
	SessionID       string `json:"sessionId"`
	ParticipantID   string `json:"participantId"`
	ParticipantName string `json:"participantName"`
}

func (s *Store) enqueue(index uint64, r *Room, sessionID, eventID, eventType string, at time.Time, data any) {
	raw, err := json.Marshal(data)
	if err != nil {
		panic(fmt.Sprintf("state: marshal %s payload: %v", eventType, err))
	}
	s.enqueueRaw(index, r, sessionID, eventID, eventType, at, raw, "")
}

// MatchEvent reports whether a subscription pattern list selects eventType.
// The pattern language is webhooks.Match's (one implementation, fuzzed
// there); the policy is the store's: a room or global endpoint configured
// without an events list receives every event.
func MatchEvent(patterns []string, eventType string) bool {
	return len(patterns) == 0 || webhooks.Match(patterns, eventType)
}

// deliveryIDPrefix begins the ids of an event's deliveries (one per
// endpoint: "_<n>" follows); the id is the webhook-id receivers see.
func deliveryIDPrefix(eventID string) string { return "msg_" + eventID }

func (s *Store) enqueueRaw(index uint64, r *Room, sessionID, eventID, eventType string, at time.Time, data json.RawMessage, extraURL string) {
	// Bodies are rendered exactly as JSON.stringify would (no HTML escaping,
	// compact), because VideoSDK receivers verify re-serialised bodies.
	body, err := webhooks.Envelope(eventType, data)
	if err != nil {
		panic(fmt.Sprintf("state: render %s envelope: %v", eventType, err))
	}
	var targets []string
	if r.Webhook != nil && r.Webhook.EndPoint != "" && MatchEvent(r.Webhook.Events, eventType) {
		targets = append(targets, r.Webhook.EndPoint)
	}
	if extraURL != "" {
		targets = append(targets, extraURL)
	}
	for _, g := range s.GlobalEndpoints() {
		if MatchEvent(g.Events, eventType) {
			targets = append(targets, g.URL)
		}
	}
	seen := map[string]bool{}
	for i, url := range targets {
		if seen[url] {
			continue
		}
		if s.isGone(r.UserID, url) {
			continue
		}
		seen[url] = true
		d := &Delivery{ID: deliveryIDPrefix(eventID) + "_" + itoa(i), EventID: eventID, EventType: intern(eventType), RoomID: r.RoomID, SessionID: sessionID,
			UserID: r.UserID, APIKey: r.APIKey, URL: intern(url), Body: body, CreatedAt: at, Status: DeliveryPending, NextAttempt: at,
			Seq: index, Sub: s.sub, CreateIndex: index, ModifyIndex: index}
		if s.delivery(d.ID) != nil {
			continue
		}
		s.sub++
		s.putDelivery(nil, d)
	}
	s.bump("outbox", index)
}

func goneKey(userID, url string) string { return userID + "\x00" + url }

func (s *Store) isGone(userID, url string) bool {
	return one[*goneRow](s, tGone, "id", goneKey(userID, url)) != nil
}

// ungone forgets a 410 for an endpoint a room is configured with again.
func (s *Store) ungone(userID, url string) {
	if g := one[*goneRow](s, tGone, "id", goneKey(userID, url)); g != nil {
		s.del(tGone, g)
	}
}

// PendingDeliveries returns pending deliveries in enqueue order, at most
// limit (0: all).
func (s *Store) PendingDeliveries(limit int) []*Delivery {
	if limit <= 0 {
		limit = -1
	}
	rows, _ := scan[*Delivery](s.iter(tOutbox, "pending", false), Page{Limit: limit}, false, nil)
	return cloneDeliveries(rows)
}

// Outbox cursors are enqueue positions: the command's index and the
// delivery's number within it.
const subBits = 20

func outboxPos(d *Delivery) int { return int(d.Seq)<<subBits | int(d.Sub) }

// PendingPage returns pending deliveries in enqueue order from position
// from on, and the position to continue from (0 when the end was reached).
// Positions are stable: they are fixed when a delivery is enqueued.
func (s *Store) PendingPage(from, limit int) ([]*Delivery, int) {
	if limit <= 0 {
		limit = -1
	}
	it := s.from(tOutbox, "pending", false, uint64(from>>subBits), uint32(from&(1<<subBits-1)))
	rows, _ := scan[*Delivery](it, Page{Limit: limit}, false, nil)
	next := 0
	if limit > 0 && len(rows) == limit {
		next = outboxPos(rows[len(rows)-1]) + 1
	}
	return cloneDeliveries(rows), next
}

func cloneDeliveries(rows []*Delivery) []*Delivery {
	var out []*Delivery
	for _, d := range rows {
		out = append(out, d.view())
	}
	return out
}

// Delivery returns one delivery of a project.
func (s *Store) Delivery(userID, id string) (*Delivery, bool) {
	d := s.delivery(id)
	if d == nil || d.UserID != userID {
		return nil, false
	}
	return d.view(), true
}

// DeliveryFilter selects deliveries for the log.
type DeliveryFilter struct {
	UserID    string
	RoomID    string
	EventType string
	Status    string
	URL       string
}

// DeliveriesPage is a page of a project's delivery log, newest first, and
// how many deliveries match. One filter (or none) has an index and a
// counter of its own, so the page walks only its rows and the total is
// read. Filters together walk the narrowest one's rows (a room's, an
// endpoint's, an event type's, then a status's) and count the matches.
func (s *Store) DeliveriesPage(f DeliveryFilter, p Page) ([]*Delivery, int) {
	var lists []listFilter
	if f.RoomID != "" {
		// The room index holds the room's deliveries, all of its project's
		// (a room never changes project); the counter is the project's, so
		// another project's filter counts none and lists none.
		lists = append(lists, listFilter{index: "room", args: []any{f.RoomID}, counter: deliveriesFieldCounter(f.UserID, "room", f.RoomID)})
	}
	if f.URL != "" {
		lists = append(lists, listFilter{index: "url", args: []any{f.UserID, f.URL}, counter: deliveriesFieldCounter(f.UserID, "url", f.URL)})
	}
	if f.EventType != "" {
		lists = append(lists, listFilter{index: "event", args: []any{f.UserID, f.EventType}, counter: deliveriesFieldCounter(f.UserID, "event", f.EventType)})
	}
	if f.Status != "" {
		lists = append(lists, listFilter{index: "status", args: []any{f.UserID, f.Status}, counter: deliveriesStatusCounter(f.UserID, f.Status)})
	}
	if len(lists) == 0 {
		lists = append(lists, listFilter{index: "project", args: []any{f.UserID}, counter: deliveriesCounter(f.UserID)})
	}
	rows, total := filteredPage(s, tOutbox, lists, p, func(d *Delivery) bool {
		return d.UserID == f.UserID && (f.RoomID == "" || d.RoomID == f.RoomID) && (f.EventType == "" || d.EventType == f.EventType) &&
			(f.Status == "" || d.Status == f.Status) && (f.URL == "" || d.URL == f.URL)
	})
	return cloneDeliveries(rows), total
}

// GlobalEndpoints returns the operator's endpoints.
func (s *Store) GlobalEndpoints() []GlobalEndpoint {
	if m := one[*metaRow](s, tMeta, "id", metaGlobal); m != nil {
		return append([]GlobalEndpoint(nil), m.Value.([]GlobalEndpoint)...)
	}
	return nil
}

// SessionDeliveries lists the deliveries of a session's events, in order
// (a walk of the session's own index, and for a session that ended before
// session-ended deliveries carried their session id, of the room's log
// from the session's start to the end of its session-ended deliveries).
func (s *Store) SessionDeliveries(sessionID string) []*Delivery {
	ss := s.session(sessionID)
	if ss == nil {
		return nil
	}
	rows := all[*Delivery](s.iter(tOutbox, "session", false, sessionID))
	if ss.End != nil && !slices.ContainsFunc(rows, func(d *Delivery) bool { return d.EventType == "session-ended" }) {
		if ended := s.unindexedSessionEnded(ss); len(ended) > 0 {
			rows = append(rows, ended...)
			slices.SortStableFunc(rows, func(a, b *Delivery) int { return outboxPos(a) - outboxPos(b) })
		}
	}
	return cloneDeliveries(rows)
}

// unindexedSessionEnded finds the session-ended deliveries of an ended
// session that were stored without its id: they follow the session's start
// in its room's log and precede the first delivery of a later session.
func (s *Store) unindexedSessionEnded(ss *Session) []*Delivery {
	var out []*Delivery
	it := s.from(tOutbox, "room", false, ss.RoomID, ss.CreateIndex)
	for v := it.Next(); v != nil; v = it.Next() {
		d := v.(*Delivery)
		if d.RoomID != ss.RoomID {
			break
		}
		if len(out) > 0 && d.Seq != out[0].Seq {
			break // one command enqueued them all
		}
		sid := d.sessionOf()
		switch {
		case sid == ss.ID && d.SessionID == "":
			out = append(out, d)
		case sid == "" || sid == ss.ID:
		default:
			if later := s.session(sid); later != nil && later.CreateIndex > ss.CreateIndex {
				return out
			}
		}
	}
	return out
}

// SessionWebhookOrigins lists the control nodes that sent a session's
// webhook deliveries (the session's audit): the nodes announced before
// their attempts (Audit.Webhooks), then, for attempts made before versions
// announced them, the node of each delivery's last attempt, counting the
// deliveries it made last.
func (s *Store) SessionWebhookOrigins(sessionID string) []WebhookOrigin {
	var out []WebhookOrigin
	if a := s.audit(sessionID); a != nil {
		out = append(out, a.Webhooks...)
	}
	announced := len(out)
	for _, d := range s.SessionDeliveries(sessionID) {
		if d.SentFrom == "" || d.LastAttempt == nil {
			continue
		}
		if slices.ContainsFunc(out[:announced], func(w WebhookOrigin) bool { return w.NodeID == d.SentFrom }) {
			continue
		}
		at := *d.LastAttempt
		i := slices.IndexFunc(out[announced:], func(w WebhookOrigin) bool { return w.NodeID == d.SentFrom && w.Region == d.SentFromRegion })
		if i < 0 {
			out = append(out, WebhookOrigin{NodeID: d.SentFrom, Region: d.SentFromRegion, First: at, Last: at})
			i = len(out) - 1 - announced
		}
		w := &out[announced+i]
		w.Attempts++
		if at.Before(w.First) {
			w.First = at
		}
		if at.After(w.Last) {
			w.Last = at
		}
	}
	for i := range out {
		out[i].Announced = ""
	}
	return out
}

// WebhookStartNeeded reports whether node must announce its next attempt
// at delivery id before making it (RecordDelivery with Starting): the
// delivery belongs to a session whose audit does not list node yet.
func (s *Store) WebhookStartNeeded(id, node string) bool {
	d := s.delivery(id)
	if d == nil || d.Status != DeliveryPending {
		return false
	}
	sid := d.sessionOf()
	if sid == "" || s.session(sid) == nil {
		return false
	}
	a := s.audit(sid)
	return a == nil || !slices.ContainsFunc(a.Webhooks, func(w WebhookOrigin) bool { return w.NodeID == node })
}
