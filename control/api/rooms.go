package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/gofiber/fiber/v2"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/control/webhooks"
	"github.com/meridian-video/meridian/geo"
	"github.com/meridian-video/meridian/shared/ids"
)

func (s *Server) roomRoutes(r fiber.Router) {
	r.Post("/rooms", s.createRoom)
	r.Get("/rooms", s.listRooms)
	r.Get("/rooms/validate/:roomId", s.validateRoom)
	r.Post("/rooms/validate/:roomId", s.validateRoom)
	r.Post("/rooms/deactivate", s.deactivateRoom)
	r.Get("/rooms/:roomId", s.getRoom)
	r.Post("/rooms/:roomId/join", s.joinRoom)
	r.Post("/rooms/:roomId/meeting-link", s.meetingLink)
	r.Post("/rooms/:roomId", s.setRoomStatus)
}

var eventPatternRe = regexp.MustCompile(`^(\*|[a-z][a-z0-9-]*\*?)$`)

// knownEventTypes is the webhook catalogue. A room's events list names
// these (or patterns matching some), or names upstream has and Meridian
// does not send (upstreamOnlyEvents: accepted so that a client moving
// from VideoSDK keeps working; they just never arrive). A typo is refused:
// it would silently deliver nothing. The list is never longer than the
// two together.
var knownEventTypes = webhooks.EventTypes()

// upstreamOnlyEvents: event names and name prefixes upstream documents but
// Meridian does not emit (videosdk-v2.md §11.3).
var upstreamOnlyEvents = []string{"resource-acquired", "ai-deployment-session-", "agent-session-", "composite-merge-"}

// maxEvents bounds a room's webhook.events list.
var maxEvents = len(knownEventTypes) + len(upstreamOnlyEvents)

// knownEventPattern: pattern e selects an event of the catalogue, or names
// one upstream has.
func knownEventPattern(e string) bool {
	if slices.ContainsFunc(knownEventTypes, func(t string) bool { return webhooks.Match([]string{e}, t) }) {
		return true
	}
	name := strings.TrimSuffix(e, "*")
	return slices.ContainsFunc(upstreamOnlyEvents, func(u string) bool {
		return strings.HasPrefix(name, u) || (strings.HasSuffix(e, "*") && strings.HasPrefix(u, name))
	})
}

// MaxAllowedParticipantIDs bounds a room's allowedParticipantIds: the list
// is stored with the room and echoed in every view of it.
const MaxAllowedParticipantIDs = 1000

// Limits on client JSON the API stores as given (autoStartConfig).
const (
	maxStoredJSON  = 8 << 10
	maxStoredDepth = 8
)

// boundedJSON checks a stored JSON value's size and nesting.
func boundedJSON(raw []byte, maxBytes, maxDepth int) error {
	if len(raw) > maxBytes {
		return fmt.Errorf("must be at most %d bytes of JSON, got %d", maxBytes, len(raw))
	}
	depth, inString, escaped := 0, false, false
	for _, b := range raw {
		switch {
		case escaped:
			escaped = false
		case inString && b == '\\':
			escaped = true
		case b == '"':
			inString = !inString
		case inString:
		case b == '{' || b == '[':
			depth++
			if depth > maxDepth {
				return fmt.Errorf("must nest at most %d levels deep", maxDepth)
			}
		case b == '}' || b == ']':
			depth--
		}
	}
	return nil
}

type createRoomRequest struct {
	CustomRoomID          *string          `json:"customRoomId"`
	Webhook               *webhookRequest  `json:"webhook"`
	AutoCloseConfig       *autoCloseReq    `json:"autoCloseConfig"`
	AutoStartConfig       *json.RawMessage `json:"autoStartConfig"`
	GeoFence              *string          `json:"geoFence"`
	AllowedParticipantIDs []string         `json:"allowedParticipantIds"`
	MultiComposition      *struct {
		Recording *bool `json:"recording"`
		HLS       *bool `json:"hls"`
		RTMP      *bool `json:"rtmp"`
	} `json:"multiComposition"`
	Region          *string          `json:"region"` // discontinued upstream: accepted, ignored
	MaxParticipants *float64         `json:"maxParticipants"`
	Pin             *state.PinPolicy `json:"pin"`
	// RequireSSO (Meridian): participants sign in with the identity
	// provider before they join; only tokens minted for them then join.
	RequireSSO *bool `json:"requireSSO"`
}

type webhookRequest struct {
	EndPoint string   `json:"endPoint"`
	Events   []string `json:"events"`
}

type autoCloseReq struct {
	Type     string   `json:"type"`
	Duration *float64 `json:"duration"`
}

func validateWebhookURL(field, raw string) error {
	if len(raw) > 512 {
		return invalidField(field, "must be at most 512 characters")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return invalidField(field, "must be an absolute http(s) URL")
	}
	if numericHost(u.Hostname()) {
		return invalidField(field, "host %q is an address in a non-standard spelling; write the IP address or a domain name", echo(u.Hostname()))
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return invalidField(field, "has port %s, which is not a TCP port (1-65535)", echo(p))
		}
	}
	if u.User != nil {
		return invalidField(field, "must not contain a user name or password (\"user:password@\"): the URL is shown in the room and the delivery log; "+
			"receivers authenticate deliveries by their signature (webhook-signature), or a secret token in the URL's path or query")
	}
	return nil
}

// numericHost: 2130706433, 0x7f000001, 127.1 — numbers that some resolvers
// read as IPv4 addresses and others as unresolvable names.
func numericHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil || h == "" {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		l := strings.ToLower(label)
		if rest, ok := strings.CutPrefix(l, "0x"); ok {
			l = rest
			if l == "" || strings.Trim(l, "0123456789abcdef") != "" {
				return false
			}
			continue
		}
		if l == "" || strings.Trim(l, "0123456789") != "" {
			return false
		}
	}
	return true
}

func (req *createRoomRequest) toRoom(checkURL func(string) error, fences geo.FenceTable) (state.Room, error) {
	var r state.Room
	if req.CustomRoomID != nil {
		cid := *req.CustomRoomID
		if strings.TrimSpace(cid) == "" || len(cid) > 256 || strings.IndexFunc(cid, unicode.IsControl) >= 0 || unsafeText(cid) {
			return r, invalidField("customRoomId", "must be 1-256 printable characters (no control or bidirectional-override characters)")
		}
		r.CustomRoomID = cid
	}
	if w := req.Webhook; w != nil {
		if err := validateWebhookURL("webhook.endPoint", w.EndPoint); err != nil {
			return r, err
		}
		if checkURL != nil {
			if err := checkURL(w.EndPoint); err != nil {
				return r, invalidField("webhook.endPoint", "is not allowed: %v", err)
			}
		}
		if len(w.Events) > maxEvents {
			return r, invalidField("webhook.events", "must list at most %d entries (one per event type)", maxEvents)
		}
		for i, e := range w.Events {
			if !eventPatternRe.MatchString(e) || len(e) > 64 {
				return r, invalidField(fmt.Sprintf("webhook.events[%d]", i), "must be an event name or a pattern like \"recording-*\"")
			}
			if !knownEventPattern(e) {
				return r, invalidField(fmt.Sprintf("webhook.events[%d]", i), "%q is not an event type nor a pattern matching one (e.g. \"session-ended\", \"recording-*\")", e)
			}
		}
		r.Webhook = &state.RoomWebhook{EndPoint: w.EndPoint, Events: w.Events}
	}
	if a := req.AutoCloseConfig; a != nil {
		if a.Type != "session-ends" && a.Type != "session-end-and-deactivate" {
			return r, invalidField("autoCloseConfig.type", "must be \"session-ends\" or \"session-end-and-deactivate\"")
		}
		d := 480.0
		if a.Duration != nil {
			d = *a.Duration
		}
		// Units conflict upstream (reference page: minutes; the official
		// server SDK sends its afterInactiveSeconds here). Meridian reads
		// seconds, counted from the moment the room has nobody left in it.
		if d <= 0 || d > 30*24*3600 {
			return r, invalidField("autoCloseConfig.duration", "must be a positive number of seconds up to 2592000 (30 days)")
		}
		r.AutoCloseConfig = &state.AutoCloseConfig{Type: a.Type, Duration: d}
	}
	if req.AutoStartConfig != nil {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(*req.AutoStartConfig, &obj); err != nil {
			return r, invalidField("autoStartConfig", "must be an object")
		}
		// It is stored and echoed in every room view: keep it a config,
		// not a payload.
		if err := boundedJSON(*req.AutoStartConfig, maxStoredJSON, maxStoredDepth); err != nil {
			return r, invalidField("autoStartConfig", "%v", err)
		}
		if err := checkAutoStart(*req.AutoStartConfig, checkURL); err != nil {
			return r, err
		}
		compact := &bytes.Buffer{}
		_ = json.Compact(compact, *req.AutoStartConfig)
		r.AutoStartConfig = compact.Bytes()
	}
	if req.GeoFence != nil {
		if _, ok := fences.Policy(*req.GeoFence); !ok {
			return r, invalidField("geoFence", "must be one of %s", strings.Join(fences.Codes(), ", "))
		}
		r.GeoFence = *req.GeoFence
	}
	if len(req.AllowedParticipantIDs) > MaxAllowedParticipantIDs {
		return r, invalidField("allowedParticipantIds", "must list at most %d participant ids", MaxAllowedParticipantIDs)
	}
	for i, p := range req.AllowedParticipantIDs {
		if _, err := ids.ParseParticipantID(p); err != nil {
			return r, invalidField(fmt.Sprintf("allowedParticipantIds[%d]", i), "must be 1-64 characters without whitespace")
		}
	}
	r.AllowedParticipantIDs = req.AllowedParticipantIDs
	if req.MultiComposition != nil {
		b, _ := json.Marshal(req.MultiComposition)
		r.MultiComposition = b
	}
	if req.MaxParticipants != nil {
		n := *req.MaxParticipants
		if n != float64(int64(n)) || n < 1 || n > 10000 {
			return r, invalidField("maxParticipants", "must be an integer from 1 to 10000")
		}
		r.MaxParticipants = int(n)
	}
	if req.Pin != nil {
		r.Pin = *req.Pin // checked against the region catalog by checkPin
	}
	if req.RequireSSO != nil {
		r.RequireSSO = *req.RequireSSO
	}
	return r, nil
}

// checkPin refuses a pin naming a region or a jurisdiction the control
// plane does not know. Edges register only in known regions (placement's
// register), so such a pin could never be met: a room with it would answer
// every join with 503, and a key with it could place no room at all. A
// typo in a sovereignty pin is better refused when it is written.
func (s *Server) checkPin(field string, p state.PinPolicy) error {
	catalog := s.catalog()
	for i, r := range p.Regions {
		if !catalog.Has(r) {
			return invalidField(fmt.Sprintf("%s.regions[%d]", field, i),
				"region %q is not known to the control plane; use a built-in region or define it on every control node with --define-region", r)
		}
	}
	for i, j := range p.Jurisdictions {
		if !catalog.HasJurisdiction(j) {
			return invalidField(fmt.Sprintf("%s.jurisdictions[%d]", field, i),
				"no region known to the control plane is in jurisdiction %q; jurisdictions are lowercase (eu, us, de, ...), as the regions list them", j)
		}
	}
	return nil
}

// catalog is the region catalog of this node's configuration.
func (s *Server) catalog() *geo.Catalog {
	if s.cfg.Catalog == nil {
		return geo.NewCatalog()
	}
	return s.cfg.Catalog
}

// pinsMeet refuses a room whose own pin and geoFence allow no region
// together, or whose pin or geoFence allows no region the API key's pin
// allows: placement requires all of them, so every join to such a room
// would answer 503. room is as requested (its own pin, not the key's).
func (s *Server) pinsMeet(room state.Room, keyPin state.PinPolicy) error {
	own := geo.Policy{Regions: room.Pin.Regions, Jurisdictions: room.Pin.Jurisdictions}
	key := geo.Policy{Regions: keyPin.Regions, Jurisdictions: keyPin.Jurisdictions}
	fence, fenced := s.cfg.Fences.Policy(room.GeoFence) // false for no geoFence
	if own.Empty() && key.Empty() {
		return nil
	}
	catalog := s.catalog()
	var regions []string
	s.node.FSM().Read(func(st *state.Store) {
		for _, e := range st.Edges() {
			regions = append(regions, e.Region)
		}
	})
	if fenced && !own.Empty() && !catalog.AnyAllowed(regions, own, fence) {
		return invalidField("geoFence", "%s allows no region the room's pin allows (%s)", room.GeoFence, geo.DescribeAll(own))
	}
	if key.Empty() {
		return nil
	}
	ps, field := []geo.Policy{own, key}, "pin"
	if fenced {
		ps, field = append(ps, fence), "geoFence"
	}
	if catalog.AnyAllowed(regions, ps...) {
		return nil
	}
	return invalidField(field, "allows no region this API key may use (the key is pinned to %s)", geo.DescribeAll(key))
}

func (s *Server) createRoom(c *fiber.Ctx) error {
	p := principal(c)
	var req createRoomRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	room, err := req.toRoom(s.checkURL, s.cfg.Fences)
	if err != nil {
		return err
	}
	if cid := room.CustomRoomID; cid != "" {
		// A room is named by its roomId, customRoomId or id alike (paths,
		// token scopes): a customRoomId that is another room's roomId or
		// id would make a token scoped to that name cover both rooms.
		var other *state.Room
		s.node.FSM().Read(func(st *state.Store) { other, _ = st.Room(p.Key.UserID, cid) })
		if other != nil && (other.RoomID == cid || other.ID == cid) {
			return invalidField("customRoomId", "%q is the roomId or id of another room; choose another name", truncateForMsg(cid))
		}
	}
	if room.RequireSSO && !s.participantSSO() {
		return invalidField("requireSSO", "needs an identity provider, and this control plane has none configured (--console-oidc-issuer)")
	}
	if p.Claims.RoomID != "" {
		return &Error{Status: fiber.StatusForbidden, Message: fmt.Sprintf("this token is scoped to room %q and cannot create rooms", p.Claims.RoomID)}
	}
	if err := s.checkPin("pin", room.Pin); err != nil {
		return err
	}
	if err := s.pinsMeet(room, p.Key.Pin); err != nil {
		return err
	}
	if room.Pin.Empty() {
		room.Pin = p.Key.Pin // a pinned key's rooms inherit its policy
	}
	roomID, err := ids.NewRoomID(s.cfg.Rand)
	if err != nil {
		return err
	}
	docID, err := ids.NewDocID(s.cfg.Rand)
	if err != nil {
		return err
	}
	now := s.cfg.Now().UTC()
	room.ID, room.RoomID, room.UserID, room.APIKey = string(docID), string(roomID), p.Key.UserID, p.Key.Key
	room.CreatedAt, room.UpdatedAt = now, now
	raw, err := s.apply(c, state.CmdCreateRoom, state.CreateRoom{Room: room})
	if err != nil {
		return err
	}
	res, err := state.DecodeCreateRoomResult(raw) // encoding/json's result, without its reflection in the common case
	if err != nil {
		return err
	}
	return s.sendRoom(c, res.Room, false)
}

func (s *Server) listRooms(c *fiber.Ctx) error {
	p := principal(c)
	pg, err := parsePage(c, 20)
	if err != nil {
		return err
	}
	query := c.Query("query")
	var (
		items []*state.Room
		info  pageInfo
	)
	if err := s.read(c, func(st *state.Store) {
		if query == "" && p.Claims.RoomID == "" {
			// The common case: one index walk that stops after the page;
			// the total is the project's counter.
			var total int
			items, total = st.RoomsPage(p.Key.UserID, pg.window())
			info = pageInfoOf(total, pg)
			return
		}
		// Exact matches (the query, a room-scoped token): a few rooms.
		var rooms []*state.Room
		if query != "" {
			rooms = st.RoomsByRef(p.Key.UserID, query, false)
		} else {
			rooms = st.RoomsByRef(p.Key.UserID, p.Claims.RoomID, true)
		}
		rooms = slices.DeleteFunc(rooms, func(r *state.Room) bool { return p.CheckRoom(r.RoomID, r.CustomRoomID, r.ID) != nil })
		items, info = paginate(rooms, pg)
	}); err != nil {
		return err
	}
	return s.sendRoomsPage(c, info, items)
}

// findRoom resolves a path or body room reference for the caller and
// enforces the token's room scope.
func (s *Server) findRoom(c *fiber.Ctx, ref string) (*state.Room, error) {
	return s.resolveRoom(c, ref, false)
}

// findRoomToWrite is findRoom for routes that change the room. A miss is
// checked with the current leader before it becomes a 404, on every node:
// the room may have been created through another node, and a node that
// still believes it leads may have been deposed while it was paused or cut
// off. When that check is not possible the answer is a retryable 503, never
// a definite 404 from stale state.
func (s *Server) findRoomToWrite(c *fiber.Ctx, ref string) (*state.Room, error) {
	return s.resolveRoom(c, ref, true)
}

func (s *Server) resolveRoom(c *fiber.Ctx, ref string, write bool) (*state.Room, error) {
	p := principal(c)
	switch {
	case ref == "":
		return nil, badRequest("roomId is required")
	case len(ref) > 256:
		return nil, badRequest(fmt.Sprintf("roomId must be at most 256 characters, got %d", len(ref)))
	}
	var room *state.Room
	find := func(st *state.Store) bool { room, _ = st.Room(p.Key.UserID, ref); return room != nil }
	if err := s.readOrCatchUp(c, find); err != nil {
		return nil, err
	}
	if room == nil && write {
		if err := s.node.Barrier(c.UserContext()); err != nil {
			return nil, err
		}
		s.node.FSM().Read(func(st *state.Store) { find(st) })
	}
	if room == nil {
		return nil, notFound(fmt.Sprintf("room %q not found", ref))
	}
	if err := p.CheckRoom(room.RoomID, room.CustomRoomID, room.ID); err != nil {
		return nil, err
	}
	return room, nil
}

// pathRoomRef is the room a path names: a roomId, a document id, or a
// customRoomId, which may hold characters a client has to percent-encode
// in a path ("a b" as a%20b, "a/b" as a%2Fb). Fiber hands path parameters
// over as sent; one that is not a valid escape ("x%y") is taken as it is.
func pathRoomRef(c *fiber.Ctx) string {
	raw := c.Params("roomId")
	if ref, err := url.PathUnescape(raw); err == nil {
		return ref
	}
	return raw
}

func (s *Server) getRoom(c *fiber.Ctx) error {
	room, err := s.findRoom(c, pathRoomRef(c))
	if err != nil {
		return err
	}
	return s.sendRoom(c, room, true)
}

// validateRoom answers 400 for unknown rooms: VideoSDK's sample apps check
// for exactly that status.
func (s *Server) validateRoom(c *fiber.Ctx) error {
	room, err := s.findRoom(c, pathRoomRef(c))
	var ae *Error
	if errors.As(err, &ae) && ae.Status == fiber.StatusNotFound {
		return badRequest(ae.Message)
	}
	if err != nil {
		return err
	}
	return s.sendRoom(c, room, false)
}

func (s *Server) deactivateRoom(c *fiber.Ctx) error {
	p := principal(c)
	var req struct {
		RoomID *string `json:"roomId"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.RoomID == nil || *req.RoomID == "" {
		return invalidField("roomId", "is required")
	}
	room, err := s.findRoomToWrite(c, *req.RoomID)
	if err != nil {
		return err
	}
	if room.RoomID != *req.RoomID {
		// Client-observed upstream behaviour: a customRoomId is refused with 402.
		return &Error{Status: fiber.StatusPaymentRequired, Message: fmt.Sprintf("deactivate takes the roomId (%q is not one)", *req.RoomID)}
	}
	raw, err := s.apply(c, state.CmdDeactivateRoom, state.DeactivateRoom{UserID: p.Key.UserID, RoomID: room.RoomID, At: s.cfg.Now().UTC()})
	if err != nil {
		return err
	}
	var updated state.Room
	if err := json.Unmarshal(raw, &updated); err != nil {
		return err
	}
	s.closeRoomOnEdges(c, &updated)
	v := s.roomView(&updated, true)
	return c.JSON(deactivatedView{roomView: v, MeetingID: updated.RoomID, UserMeetingID: updated.CustomRoomID, UserID: updated.UserID})
}

func (s *Server) setRoomStatus(c *fiber.Ctx) error {
	p := principal(c)
	var req struct {
		Status string `json:"status"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Status != "enabled" && req.Status != "disabled" {
		return invalidField("status", "must be \"enabled\" or \"disabled\"")
	}
	room, err := s.findRoomToWrite(c, pathRoomRef(c))
	if err != nil {
		return err
	}
	raw, err := s.apply(c, state.CmdSetRoomStatus, state.SetRoomStatus{UserID: p.Key.UserID, RoomID: room.RoomID, Disabled: req.Status == "disabled", At: s.cfg.Now().UTC()})
	if err != nil {
		return err
	}
	var updated state.Room
	if err := json.Unmarshal(raw, &updated); err != nil {
		return err
	}
	return c.JSON(struct {
		roomView
		Status string `json:"status"`
	}{s.roomView(&updated, false), req.Status})
}

type userView struct {
	Email              string  `json:"email"`
	Name               string  `json:"name"`
	DiscontinuedReason *string `json:"discontinuedReason"`
	ID                 string  `json:"id"`
}

type roomLinks struct {
	GetRoom    string `json:"get_room"`
	GetSession string `json:"get_session"`
}

type roomView struct {
	RoomID                string                 `json:"roomId"`
	CustomRoomID          string                 `json:"customRoomId,omitempty"`
	UserID                string                 `json:"userId,omitempty"`
	User                  *userView              `json:"user,omitempty"`
	Disabled              bool                   `json:"disabled"`
	CreatedAt             string                 `json:"createdAt"`
	UpdatedAt             string                 `json:"updatedAt"`
	ID                    string                 `json:"id"`
	Webhook               *state.RoomWebhook     `json:"webhook,omitempty"`
	AutoCloseConfig       *state.AutoCloseConfig `json:"autoCloseConfig,omitempty"`
	AutoStartConfig       json.RawMessage        `json:"autoStartConfig,omitempty"`
	GeoFence              string                 `json:"geoFence,omitempty"`
	AllowedParticipantIDs []string               `json:"allowedParticipantIds,omitempty"`
	MultiComposition      json.RawMessage        `json:"multiComposition,omitempty"`
	MaxParticipants       int                    `json:"maxParticipants,omitempty"`
	Pin                   *state.PinPolicy       `json:"pin,omitempty"`
	RequireSSO            bool                   `json:"requireSSO,omitempty"`
	Links                 *roomLinks             `json:"links,omitempty"`
}

type deactivatedView struct {
	roomView
	MeetingID     string `json:"meetingId"`
	UserMeetingID string `json:"userMeetingId,omitempty"`
	UserID        string `json:"userId"`
}

// roomView renders a room; list/get embed `user`, create/validate carry `userId`.
func (s *Server) roomView(r *state.Room, withUser bool) roomView {
	v := roomView{RoomID: r.RoomID, CustomRoomID: r.CustomRoomID, Disabled: r.Disabled, CreatedAt: restTime(r.CreatedAt), UpdatedAt: restTime(r.UpdatedAt),
		ID: r.ID, Webhook: r.Webhook, AutoCloseConfig: r.AutoCloseConfig, AutoStartConfig: r.AutoStartConfig, GeoFence: r.GeoFence,
		AllowedParticipantIDs: r.AllowedParticipantIDs, MultiComposition: r.MultiComposition, MaxParticipants: r.MaxParticipants, RequireSSO: r.RequireSSO,
		Links: &roomLinks{GetRoom: s.roomsURL + r.RoomID, GetSession: s.sessionsURL}}
	if !r.Pin.Empty() {
		pin := r.Pin
		v.Pin = &pin
	}
	if withUser {
		v.User = &userView{ID: r.UserID}
	} else {
		v.UserID = r.UserID
	}
	return v
}

// scopeCheck is a helper for handlers that found a room by other means.
func scopeCheck(p *auth.Principal, r *state.Room) error {
	return p.CheckRoom(r.RoomID, r.CustomRoomID, r.ID)
}
