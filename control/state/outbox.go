package state

import (
	"encoding/json"
	"fmt"
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
	CreateIndex    uint64 `json:"createIndex"`
	ModifyIndex    uint64 `json:"modifyIndex"`
}

func (d *Delivery) clone() *Delivery { c := *d; return &c }

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
// attempt, or one that raced a redelivery) and is ignored.
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
		s.globalEndpoints = append([]GlobalEndpoint(nil), c.Endpoints...)
		s.bump("outbox", index)
		return nil, nil
	})
	register(CmdRecordDelivery, func(s *Store, index uint64, c *RecordDelivery) (any, error) {
		d, ok := s.outbox[c.ID]
		if !ok {
			return nil, errf(CodeNotFound, "delivery %q not found", c.ID)
		}
		if d.Status != DeliveryPending || c.Attempts != d.Attempts+1 {
			return d.clone(), nil // a stale report from an old leader's attempt
		}
		at := c.AttemptedAt
		d.LastAttempt = &at
		d.EndpointGone = c.EndpointGone
		d.Status, d.Attempts, d.NextAttempt = c.Status, c.Attempts, c.NextAttempt
		d.LastStatus, d.LastError, d.LatencyMs, d.DoneAt = c.LastStatus, c.LastError, c.LatencyMs, c.DoneAt
		if c.SentFrom != "" {
			d.SentFrom, d.SentFromRegion = c.SentFrom, c.SentFromRegion
		}
		d.ModifyIndex = index
		if c.EndpointGone {
			// 410 Gone: the receiver asked us to stop. Fail what is queued for
			// that endpoint and enqueue nothing more for it until a room is
			// (re)configured with it.
			s.goneURLs[goneKey(d.UserID, d.URL)] = index
			for _, other := range s.outbox {
				if other.Status == DeliveryPending && other.UserID == d.UserID && other.URL == d.URL {
					other.Status = DeliveryFailed
					other.LastError = "endpoint answered 410 Gone"
					other.DoneAt = c.DoneAt
					other.ModifyIndex = index
				}
			}
		}
		s.bump("outbox", index)
		return d.clone(), nil
	})
	register(CmdRedeliver, func(s *Store, index uint64, c *Redeliver) (any, error) {
		d, ok := s.outbox[c.ID]
		if !ok || d.UserID != c.UserID {
			return nil, errf(CodeNotFound, "delivery %q not found", c.ID)
		}
		if d.Status == DeliveryPending {
			return nil, errf(CodeConflict, "delivery %q is still pending", c.ID)
		}
		d.Status = DeliveryPending
		d.NextAttempt = c.At
		at := c.At
		d.Redelivered = &at
		d.DoneAt = nil
		d.LastError = ""
		d.EndpointGone = false
		d.ModifyIndex = index
		s.bump("outbox", index)
		return d.clone(), nil
	})
	register(CmdEnqueueEvents, func(s *Store, index uint64, c *EnqueueEvents) (any, error) {
		for _, ev := range c.Events {
			id, ok := s.roomByRoomID[ev.RoomID]
			if !ok {
				return nil, errf(CodeNotFound, "room %q not found", ev.RoomID)
			}
			s.enqueueRaw(index, s.rooms[id], ev.EventID, ev.EventType, ev.At, ev.Data, ev.ExtraURL)
		}
		return nil, nil
	})
}

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

func (s *Store) enqueue(index uint64, r *Room, eventID, eventType string, at time.Time, data any) {
	raw, err := json.Marshal(data)
	if err != nil {
		panic(fmt.Sprintf("state: marshal %s payload: %v", eventType, err))
	}
	s.enqueueRaw(index, r, eventID, eventType, at, raw, "")
}

// MatchEvent reports whether a subscription pattern list selects eventType.
// The pattern language is webhooks.Match's (one implementation, fuzzed
// there); the policy is the store's: a room or global endpoint configured
// without an events list receives every event.
func MatchEvent(patterns []string, eventType string) bool {
	return len(patterns) == 0 || webhooks.Match(patterns, eventType)
}

func (s *Store) enqueueRaw(index uint64, r *Room, eventID, eventType string, at time.Time, data json.RawMessage, extraURL string) {
	// Bodies are rendered exactly as JSON.stringify would (no HTML escaping,
	// compact), because VideoSDK receivers verify re-serialised bodies.
	body, err := webhooks.Envelope(eventType, data)
	if err != nil {
		panic(fmt.Sprintf("state: render %s envelope: %v", eventType, err))
	}
	var sessionID string
	if ss := s.ongoingSession(r.ID); ss != nil {
		sessionID = ss.ID
	}
	var targets []string
	if r.Webhook != nil && r.Webhook.EndPoint != "" && MatchEvent(r.Webhook.Events, eventType) {
		targets = append(targets, r.Webhook.EndPoint)
	}
	if extraURL != "" {
		targets = append(targets, extraURL)
	}
	for _, g := range s.globalEndpoints {
		if MatchEvent(g.Events, eventType) {
			targets = append(targets, g.URL)
		}
	}
	seen := map[string]bool{}
	for i, url := range targets {
		if seen[url] {
			continue
		}
		if _, gone := s.goneURLs[goneKey(r.UserID, url)]; gone {
			continue
		}
		seen[url] = true
		d := &Delivery{ID: "msg_" + eventID + "_" + itoa(i), EventID: eventID, EventType: eventType, RoomID: r.RoomID, SessionID: sessionID,
			UserID: r.UserID, APIKey: r.APIKey, URL: url, Body: body, CreatedAt: at, Status: DeliveryPending, NextAttempt: at,
			Seq: index, CreateIndex: index, ModifyIndex: index}
		if _, dup := s.outbox[d.ID]; dup {
			continue
		}
		s.outbox[d.ID] = d
		s.outboxOrder = append(s.outboxOrder, d.ID)
	}
	s.bump("outbox", index)
}

func goneKey(userID, url string) string { return userID + "\x00" + url }

// PendingDeliveries returns pending deliveries in enqueue order, at most limit.
func (s *Store) PendingDeliveries(limit int) []*Delivery {
	var out []*Delivery
	for _, id := range s.outboxOrder {
		d := s.outbox[id]
		if d.Status == DeliveryPending {
			out = append(out, d.clone())
			if limit > 0 && len(out) >= limit {
				break
			}
		}
	}
	return out
}

// PendingPage returns pending deliveries in enqueue order starting at
// position from of the outbox log, and the position to continue from (0 when
// the end was reached). Positions are stable: the log is append-only.
func (s *Store) PendingPage(from, limit int) ([]*Delivery, int) {
	var out []*Delivery
	for i := from; i < len(s.outboxOrder); i++ {
		d := s.outbox[s.outboxOrder[i]]
		if d.Status != DeliveryPending {
			continue
		}
		out = append(out, d.clone())
		if limit > 0 && len(out) >= limit {
			if i+1 < len(s.outboxOrder) {
				return out, i + 1
			}
			return out, 0
		}
	}
	return out, 0
}

// Delivery returns one delivery of a project.
func (s *Store) Delivery(userID, id string) (*Delivery, bool) {
	d, ok := s.outbox[id]
	if !ok || d.UserID != userID {
		return nil, false
	}
	return d.clone(), true
}

// DeliveryFilter selects deliveries for the log.
type DeliveryFilter struct {
	UserID    string
	RoomID    string
	EventType string
	Status    string
	URL       string
}

// Deliveries lists a project's deliveries, newest first.
func (s *Store) Deliveries(f DeliveryFilter) []*Delivery {
	var out []*Delivery
	for i := len(s.outboxOrder) - 1; i >= 0; i-- {
		d := s.outbox[s.outboxOrder[i]]
		if d.UserID != f.UserID || (f.RoomID != "" && d.RoomID != f.RoomID) || (f.EventType != "" && d.EventType != f.EventType) ||
			(f.Status != "" && d.Status != f.Status) || (f.URL != "" && d.URL != f.URL) {
			continue
		}
		out = append(out, d.clone())
	}
	return out
}

// GlobalEndpoints returns the operator's endpoints.
func (s *Store) GlobalEndpoints() []GlobalEndpoint {
	return append([]GlobalEndpoint(nil), s.globalEndpoints...)
}

// SessionDeliveries lists the deliveries of a session's events, in order.
func (s *Store) SessionDeliveries(sessionID string) []*Delivery {
	var out []*Delivery
	for _, id := range s.outboxOrder {
		if d := s.outbox[id]; d != nil && d.SessionID == sessionID {
			out = append(out, d.clone())
		}
	}
	return out
}
