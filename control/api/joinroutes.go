package api

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/shared/ids"
)

type joinBody struct {
	ParticipantID *string  `json:"participantId"`
	Name          *string  `json:"name"`
	Region        *string  `json:"region"`
	Lat           *float64 `json:"lat"`
	Lon           *float64 `json:"lon"`
	// AvoidEdges names edges the client just lost (it reconnects elsewhere).
	AvoidEdges []string `json:"avoidEdges"`
}

// handleJoin: POST /v2/rooms/{roomId}/join with an rtc (or role-less) token.
func (s *Server) handleJoin(c *fiber.Ctx) error {
	p := principal(c)
	if err := p.CanJoin(); err != nil {
		return err
	}
	var body joinBody
	if err := decodeJSON(c, &body); err != nil {
		return err
	}
	room, err := s.findRoomToWrite(c, pathRoomRef(c))
	if err != nil {
		return err
	}
	if room.Disabled {
		return &Error{Status: fiber.StatusForbidden, Message: fmt.Sprintf("room %q has been deactivated", room.RoomID)}
	}
	if room.RequireSSO && (p.Claims.IdP == nil || p.Claims.IdP.Subject == "") {
		// Only a token the console minted after the participant signed in
		// with the identity provider carries the IdP identity.
		return &Error{Status: fiber.StatusForbidden, Reason: "sso-required",
			Message: fmt.Sprintf("room %q requires signing in with the identity provider: open %s/console/auth/meet/%s", room.RoomID, s.cfg.PublicURL, room.RoomID)}
	}
	pid := p.Claims.ParticipantID
	if body.ParticipantID != nil && *body.ParticipantID != "" {
		if pid != "" && pid != *body.ParticipantID {
			return &Error{Status: fiber.StatusForbidden, Message: fmt.Sprintf("this token is scoped to participant %q", pid)}
		}
		pid = *body.ParticipantID
	}
	if pid == "" {
		gen, err := ids.NewParticipantID(s.cfg.Rand)
		if err != nil {
			return err
		}
		pid = string(gen)
	}
	if _, err := ids.ParseParticipantID(pid); err != nil {
		return invalidField("participantId", "must be 1-64 characters of letters, digits, _ . : @ -")
	}
	if len(room.AllowedParticipantIDs) > 0 && !slices.Contains(room.AllowedParticipantIDs, pid) {
		return &Error{Status: fiber.StatusForbidden, Message: fmt.Sprintf("participant %q is not allowed in room %q", pid, room.RoomID)}
	}
	name := ""
	if body.Name != nil {
		name = strings.TrimSpace(*body.Name)
		if len(name) > 128 {
			return invalidField("name", "must be at most 128 characters")
		}
		if unsafeText(name) {
			// Shown to every participant and sent in webhooks: no control
			// or bidirectional-override characters that disguise it.
			return invalidField("name", "must be printable text (no control or bidirectional-override characters)")
		}
	}
	if name == "" {
		name = pid
	}
	if room.MaxParticipants > 0 {
		active := 0
		s.node.FSM().Read(func(st *state.Store) { active, _ = st.ActiveInSession(room.ID, pid) })
		if active >= room.MaxParticipants {
			return &Error{Status: fiber.StatusForbidden, Message: fmt.Sprintf("room %q is full (maxParticipants %d)", room.RoomID, room.MaxParticipants)}
		}
	}
	pub, sub := p.MediaScopes()
	req := JoinRequest{Room: room, ParticipantID: pid, Name: name, Publish: pub, Subscribe: sub,
		Moderate: slices.Contains(p.Claims.Permissions, auth.PermAllowMod), AskJoin: slices.Contains(p.Claims.Permissions, auth.PermAskJoin), ClientIP: c.IP()}
	if body.Region != nil {
		req.Hint.Region = strings.TrimSpace(*body.Region)
	}
	req.Hint.Lat, req.Hint.Lon = body.Lat, body.Lon
	if len(body.AvoidEdges) > 16 {
		return invalidField("avoidEdges", "must list at most 16 edge ids")
	}
	for i, e := range body.AvoidEdges {
		if e == "" || len(e) > 128 {
			return invalidField(fmt.Sprintf("avoidEdges[%d]", i), "must be an edge id of 1-128 characters")
		}
	}
	req.AvoidEdges = body.AvoidEdges
	if s.joins == nil {
		return &Error{Status: fiber.StatusNotImplemented, Message: "no media edges are configured on this control plane"}
	}
	resp, err := s.joins.Join(c.UserContext(), req)
	if err != nil {
		return err
	}
	return c.JSON(resp)
}

type meetingLinkBody struct {
	Permissions   []string `json:"permissions"`
	ParticipantID *string  `json:"participantId"`
	Name          *string  `json:"name"`
	ExpiresIn     *int64   `json:"expiresIn"` // seconds, default 24 h, max 30 days
	CanPublish    *bool    `json:"canPublish"`
	CanSubscribe  *bool    `json:"canSubscribe"`
}

// handleMeetingLink mints a room-scoped rtc token and returns a shareable URL
// to the meeting page, so CRMs and calendars need no token code.
func (s *Server) handleMeetingLink(c *fiber.Ctx) error {
	p := principal(c)
	var body meetingLinkBody
	if err := decodeJSON(c, &body); err != nil {
		return err
	}
	if body.Name != nil && (len(*body.Name) > 128 || unsafeText(*body.Name)) {
		return invalidField("name", "must be at most 128 characters of printable text (no control or bidirectional-override characters)")
	}
	room, err := s.findRoom(c, pathRoomRef(c))
	if err != nil {
		return err
	}
	if room.RequireSSO {
		// Participants of this room sign in with the identity provider; the
		// link sends them there, and no token can stand in for it.
		return c.JSON(fiber.Map{"roomId": room.RoomID, "url": s.cfg.PublicURL + "/console/auth/meet/" + room.RoomID, "requireSSO": true})
	}
	perms := body.Permissions
	if len(perms) == 0 {
		perms = []string{auth.PermAllowJoin}
		if delegatedToken(p) {
			perms = p.Claims.Permissions // what the caller's own token holds
		}
	}
	for i, perm := range perms {
		if perm != auth.PermAllowJoin && perm != auth.PermAskJoin && perm != auth.PermAllowMod {
			return invalidField(fmt.Sprintf("permissions[%d]", i), "must be allow_join, ask_join or allow_mod")
		}
	}
	if slices.Contains(perms, auth.PermAskJoin) && (slices.Contains(perms, auth.PermAllowJoin) || slices.Contains(perms, auth.PermAllowMod)) {
		return invalidField("permissions", "cannot combine ask_join with allow_join or allow_mod")
	}
	ttl := 24 * time.Hour
	if body.ExpiresIn != nil {
		if *body.ExpiresIn < 60 || *body.ExpiresIn > 30*24*3600 {
			return invalidField("expiresIn", "must be between 60 and 2592000 seconds")
		}
		ttl = time.Duration(*body.ExpiresIn) * time.Second
	}
	var pid string
	if body.ParticipantID != nil && *body.ParticipantID != "" {
		if _, err := ids.ParseParticipantID(*body.ParticipantID); err != nil {
			return invalidField("participantId", "must be 1-64 characters of letters, digits, _ . : @ -")
		}
		pid = *body.ParticipantID
	}
	opts := auth.MintOptions{APIKey: p.Key.Key, Permissions: perms, Roles: []string{auth.RoleRTC}, RoomID: room.RoomID,
		ParticipantID: pid, TTL: ttl, Now: s.cfg.Now(), CanPublish: body.CanPublish, CanSubscribe: body.CanSubscribe}
	if err := boundLinkByCaller(p, &opts); err != nil {
		return err
	}
	if opts.Secret, err = s.auth.Secret(p.Key); err != nil {
		return err
	}
	tok, err := auth.Mint(opts)
	if err != nil {
		return err
	}
	now, ttl := opts.Now, opts.TTL
	q := url.Values{"token": {tok}}
	if body.Name != nil && *body.Name != "" {
		q.Set("name", *body.Name)
	}
	return c.JSON(fiber.Map{"roomId": room.RoomID, "url": s.cfg.PublicURL + "/meet/" + room.RoomID + "?" + q.Encode(), "token": tok,
		"expiresAt": restTime(now.Add(ttl))})
}

// delegatedToken reports a token held by a participant's client rather
// than the app's server: one that names a participant, or that may only
// ask to join. (A project credential, or a token for the app's server,
// mints any link of its rooms.)
func delegatedToken(p *auth.Principal) bool {
	if p.Via != "jwt" {
		return false
	}
	c := p.Claims
	return c.ParticipantID != "" || (len(c.Permissions) > 0 && permRank(c.Permissions) < permRank([]string{auth.PermAllowJoin}))
}

// permRank orders what permissions allow: asking to join, joining,
// moderating (each includes the one before).
func permRank(perms []string) int {
	rank := 0
	for _, p := range perms {
		switch p {
		case auth.PermAskJoin:
			rank = max(rank, 1)
		case auth.PermAllowJoin:
			rank = max(rank, 2)
		case auth.PermAllowMod:
			rank = max(rank, 3)
		}
	}
	return rank
}

// boundLinkByCaller keeps a meeting link within the token that asked for
// it: no token mints media rights it does not have itself, and a delegated
// token (a guest's, a participant's) mints only links for its own
// participant, with no more than its permissions and no later expiry, so
// a guest's link cannot become a moderator's.
func boundLinkByCaller(p *auth.Principal, o *auth.MintOptions) error {
	c := p.Claims
	if p.Via != "jwt" {
		return nil
	}
	refuse := func(format string, a ...any) error {
		return &Error{Status: fiber.StatusForbidden, Message: fmt.Sprintf(format, a...)}
	}
	no := false
	if c.CanPublish != nil && !*c.CanPublish {
		if o.CanPublish != nil && *o.CanPublish {
			return refuse("this token may not publish: it cannot mint a link that may")
		}
		o.CanPublish = &no
	}
	if c.CanSubscribe != nil && !*c.CanSubscribe {
		if o.CanSubscribe != nil && *o.CanSubscribe {
			return refuse("this token may not subscribe: it cannot mint a link that may")
		}
		o.CanSubscribe = &no
	}
	if !delegatedToken(p) {
		return nil
	}
	if c.ParticipantID != "" {
		if o.ParticipantID != "" && o.ParticipantID != c.ParticipantID {
			return refuse("this token is scoped to participant %q: it cannot mint a link for participant %q", c.ParticipantID, o.ParticipantID)
		}
		o.ParticipantID = c.ParticipantID
	}
	if permRank(o.Permissions) > permRank(c.Permissions) {
		return refuse("this token holds %v: it cannot mint a link with %v", c.Permissions, o.Permissions)
	}
	if c.ExpiresAt != nil {
		if left := c.ExpiresAt.Sub(o.Now); left < o.TTL {
			o.TTL = max(left, time.Second)
		}
	}
	return nil
}
