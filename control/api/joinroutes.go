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
	secret, err := s.auth.Secret(p.Key)
	if err != nil {
		return err
	}
	now := s.cfg.Now()
	tok, err := auth.Mint(auth.MintOptions{APIKey: p.Key.Key, Secret: secret, Permissions: perms, Roles: []string{auth.RoleRTC}, RoomID: room.RoomID,
		ParticipantID: pid, TTL: ttl, Now: now, CanPublish: body.CanPublish, CanSubscribe: body.CanSubscribe})
	if err != nil {
		return err
	}
	q := url.Values{"token": {tok}}
	if body.Name != nil && *body.Name != "" {
		q.Set("name", *body.Name)
	}
	return c.JSON(fiber.Map{"roomId": room.RoomID, "url": s.cfg.PublicURL + "/meet/" + room.RoomID + "?" + q.Encode(), "token": tok,
		"expiresAt": restTime(now.Add(ttl))})
}
