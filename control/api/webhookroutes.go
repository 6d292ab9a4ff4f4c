package api

import (
	"fmt"

	"github.com/gofiber/fiber/v2"

	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/control/webhooks"
)

func (s *Server) webhookRoutes(r fiber.Router) {
	r.Get("/webhooks/signing-secret", s.signingSecret)
	r.Get("/webhooks/deliveries", s.listDeliveries)
	r.Get("/webhooks/deliveries/:id", s.getDelivery)
	r.Post("/webhooks/deliveries/:id/redeliver", s.redeliver)
}

// signingSecret returns the key's Standard Webhooks secret (whsec_...).
func (s *Server) signingSecret(c *fiber.Ctx) error {
	p := principal(c)
	if p.Claims.RoomID != "" {
		return &Error{Status: fiber.StatusForbidden, Message: "a room-scoped token cannot read the signing secret"}
	}
	secret, err := s.sealer.Open(p.Key.WebhookSecretEnc)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"secret": string(secret)})
}

func (s *Server) rsaPublicKey(c *fiber.Ctx) error {
	var sec *state.ClusterSecrets
	s.node.FSM().Read(func(st *state.Store) { sec, _ = st.Secrets() })
	if sec == nil {
		return &Error{Status: fiber.StatusServiceUnavailable, Message: "cluster secrets not initialised yet", RetryAfter: 1}
	}
	return c.JSON(fiber.Map{"publicKey": sec.WebhookRSAPubPEM})
}

type deliveryView struct {
	ID         string  `json:"id"`
	EventID    string  `json:"eventId"`
	EventType  string  `json:"eventType"`
	RoomID     string  `json:"roomId"`
	SessionID  string  `json:"sessionId,omitempty"`
	URL        string  `json:"url"`
	Status     string  `json:"status"`
	Attempts   int     `json:"attempts"`
	LastStatus int     `json:"lastStatusCode,omitempty"`
	LastError  string  `json:"lastError,omitempty"`
	LatencyMs  int64   `json:"latencyMs"`
	CreatedAt  string  `json:"createdAt"`
	NextTry    *string `json:"nextAttemptAt"`
	DoneAt     *string `json:"completedAt"`
}

func deliveryViewOf(d *state.Delivery) deliveryView {
	v := deliveryView{ID: d.ID, EventID: d.EventID, EventType: d.EventType, RoomID: d.RoomID, SessionID: d.SessionID, URL: d.URL, Status: d.Status,
		Attempts: d.Attempts, LastStatus: d.LastStatus, LastError: d.LastError, LatencyMs: d.LatencyMs, CreatedAt: restTime(d.CreatedAt), DoneAt: restTimePtr(d.DoneAt)}
	if d.Status == state.DeliveryPending {
		v.NextTry = restTimePtr(&d.NextAttempt)
	}
	return v
}

// listDeliveries is the delivery log: filter by roomId, event, status, url.
func (s *Server) listDeliveries(c *fiber.Ctx) error {
	p := principal(c)
	pg, err := parsePage(c, 20)
	if err != nil {
		return err
	}
	f := state.DeliveryFilter{UserID: p.Key.UserID, RoomID: c.Query("roomId"), EventType: c.Query("event"), Status: c.Query("status"), URL: c.Query("url")}
	scope, err := s.tokenRoom(c)
	if err != nil {
		return err
	}
	if scope != nil {
		// A room-scoped token sees its room's deliveries only.
		if f.RoomID != "" && f.RoomID != scope.RoomID && f.RoomID != scope.CustomRoomID {
			return &Error{Status: fiber.StatusForbidden, Message: "this token is scoped to another room"}
		}
		f.RoomID = scope.RoomID
	}
	if f.Status != "" && f.Status != state.DeliveryPending && f.Status != state.DeliveryDelivered && f.Status != state.DeliveryFailed {
		return badRequest(`query parameter "status" must be pending, delivered or failed`)
	}
	// An unknown event type would match nothing: a typo would read as "no
	// deliveries" instead of as the mistake it is.
	if f.EventType != "" && !webhooks.KnownEvent(f.EventType) {
		return badRequest(fmt.Sprintf(`query parameter "event" must be an event type (e.g. "session-ended"), not %q`, truncateForMsg(f.EventType)))
	}
	var (
		items []*state.Delivery
		total int
	)
	if err := s.read(c, func(st *state.Store) { items, total = st.DeliveriesPage(f, pg.window()) }); err != nil {
		return err
	}
	data := make([]deliveryView, len(items))
	for i, d := range items {
		data[i] = deliveryViewOf(d)
	}
	return c.JSON(fiber.Map{"pageInfo": pageInfoOf(total, pg), "data": data})
}

func (s *Server) getDelivery(c *fiber.Ctx) error {
	p := principal(c)
	var (
		d    *state.Delivery
		tomb *state.Tombstone
	)
	if err := s.read(c, func(st *state.Store) {
		if d, _ = st.Delivery(p.Key.UserID, c.Params("id")); d == nil {
			tomb, _ = st.Removed(p.Key.UserID, state.KindDelivery, c.Params("id"))
		}
	}); err != nil {
		return err
	}
	if gone := removedByRetention(p, tomb); gone != nil {
		return gone
	}
	if d == nil {
		return notFound(fmt.Sprintf("delivery %q not found", truncateForMsg(c.Params("id"))))
	}
	if ok, err := s.inScope(c, d); err != nil {
		return err
	} else if !ok {
		return notFound(fmt.Sprintf("delivery %q not found", truncateForMsg(c.Params("id"))))
	}
	return c.JSON(deliveryViewOf(d))
}

// tokenRoom is the room a room-scoped token is limited to (nil: no scope).
// The room may have been created through another node a moment ago: like
// findRoomToWrite, a node that has not applied it catches up with the
// leader before saying it does not exist, and one that cannot (no leader)
// answers a retryable 503 rather than a definite 403.
func (s *Server) tokenRoom(c *fiber.Ctx) (*state.Room, error) {
	p := principal(c)
	if p.Claims.RoomID == "" {
		return nil, nil
	}
	var r *state.Room
	find := func(st *state.Store) { r, _ = st.Room(p.Key.UserID, p.Claims.RoomID) }
	if s.node.FSM().Read(find); r == nil {
		if err := s.node.Barrier(c.UserContext()); err != nil {
			return nil, err
		}
		s.node.FSM().Read(find)
	}
	if r == nil {
		return nil, &Error{Status: fiber.StatusForbidden, Message: fmt.Sprintf("this token is scoped to room %q, which does not exist", truncateForMsg(p.Claims.RoomID))}
	}
	return r, nil
}

// inScope: a room-scoped token may only touch its room's deliveries. An
// error is the token's room not being known (403) or not yet knowable
// (503).
func (s *Server) inScope(c *fiber.Ctx, d *state.Delivery) (bool, error) {
	scope, err := s.tokenRoom(c)
	if err != nil {
		return false, err
	}
	return scope == nil || d.RoomID == scope.RoomID, nil
}

func (s *Server) redeliver(c *fiber.Ctx) error {
	p := principal(c)
	id := c.Params("id")
	var (
		cur  *state.Delivery
		tomb *state.Tombstone
	)
	find := func(st *state.Store) {
		if cur, _ = st.Delivery(p.Key.UserID, id); cur == nil {
			tomb, _ = st.Removed(p.Key.UserID, state.KindDelivery, id)
		}
	}
	s.node.FSM().Read(find)
	if cur == nil && tomb == nil && p.Claims.RoomID != "" {
		// A room-scoped token may only redeliver what it can see to be its
		// room's: a node that has not applied the delivery catches up first
		// rather than applying the redelivery unchecked.
		if err := s.node.Barrier(c.UserContext()); err != nil {
			return err
		}
		s.node.FSM().Read(find)
	}
	if gone := removedByRetention(p, tomb); gone != nil {
		return gone
	}
	if cur == nil && p.Claims.RoomID != "" {
		return notFound(fmt.Sprintf("delivery %q not found", truncateForMsg(id)))
	}
	if cur != nil {
		if ok, err := s.inScope(c, cur); err != nil {
			return err
		} else if !ok {
			return notFound(fmt.Sprintf("delivery %q not found", truncateForMsg(id)))
		}
	}
	if _, err := s.apply(c, state.CmdRedeliver, state.Redeliver{UserID: p.Key.UserID, ID: id, At: s.cfg.Now().UTC()}); err != nil {
		return err
	}
	var d *state.Delivery
	s.node.FSM().Read(func(st *state.Store) { d, _ = st.Delivery(p.Key.UserID, id) })
	return c.JSON(deliveryViewOf(d))
}
