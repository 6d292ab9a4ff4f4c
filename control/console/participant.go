package console

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"

	"github.com/gofiber/fiber/v2"

	"github.com/meridian-video/meridian/control/api"
	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/shared/ids"
)

// startParticipantLogin is GET /console/auth/meet/{roomId}: a participant
// of a room that requires single sign-on is sent to the identity provider
// and comes back to the meeting page with a token naming them.
func (cs *Console) startParticipantLogin(c *fiber.Ctx) error {
	roomID := c.Params("roomId")
	var room *state.Room
	cs.node.FSM().Read(func(st *state.Store) { room, _ = st.RoomByRoomID(roomID) })
	if room == nil || room.Disabled {
		return errorPage(c, fiber.StatusNotFound, fmt.Sprintf("there is no active meeting room %q", truncate(roomID, 64)))
	}
	if !room.RequireSSO {
		return errorPage(c, fiber.StatusBadRequest, "this room does not use single sign-on: ask the organiser for a meeting link")
	}
	if err := cs.startLogin(c, purposeMeet+room.RoomID, ""); err != nil {
		if ae, ok := err.(*api.Error); ok {
			return errorPage(c, ae.Status, ae.Message)
		}
		return err
	}
	return nil
}

// participantID is the IdP identity as a participant id: the e-mail or
// subject when they are valid ids, else a stable hash of issuer and subject.
func participantID(id identity) string {
	for _, cand := range []string{id.Email, id.Subject} {
		if _, err := ids.ParseParticipantID(cand); cand != "" && err == nil {
			return cand
		}
	}
	h := sha256.Sum256([]byte(id.Issuer + "\x00" + id.Subject))
	return "sso-" + hex.EncodeToString(h[:10])
}

// participantLink mints the participant's rtc token for the room, signed
// with the room's API key and carrying the IdP identity, and returns the
// meeting page URL that joins with it.
func (cs *Console) participantLink(roomID string, id identity) (string, error) {
	var (
		room *state.Room
		key  *state.APIKey
	)
	cs.node.FSM().Read(func(st *state.Store) {
		if room, _ = st.RoomByRoomID(roomID); room == nil {
			return
		}
		// The room's own key, or (revoked since) another of its project's.
		if k, ok := st.APIKey(room.APIKey); ok && k.RevokedAt == nil {
			key = k
			return
		}
		for _, k := range st.APIKeys() {
			if k.UserID == room.UserID && k.RevokedAt == nil {
				key = k
				return
			}
		}
	})
	if room == nil || room.Disabled {
		return "", refuse(fiber.StatusNotFound, "meeting room %q no longer exists or was deactivated", truncate(roomID, 64))
	}
	if key == nil {
		return "", refuse(fiber.StatusForbidden, "the room's project has no active API key: nobody can join it")
	}
	secret, err := cs.sealer.Open(key.SecretEnc)
	if err != nil {
		return "", err
	}
	pid := participantID(id)
	name := id.Name
	if name == "" {
		name = displayName(id)
	}
	tok, err := auth.Mint(auth.MintOptions{APIKey: key.Key, Secret: secret, Permissions: []string{auth.PermAllowJoin}, Roles: []string{auth.RoleRTC},
		RoomID: room.RoomID, ParticipantID: pid, TTL: cs.cfg.ParticipantTokenTTL, Now: cs.cfg.Now(),
		IdP: &auth.IdPIdentity{Issuer: id.Issuer, Subject: id.Subject}})
	if err != nil {
		return "", err
	}
	q := url.Values{"token": {tok}, "name": {truncate(name, 128)}}
	return cs.cfg.PublicURL + "/meet/" + url.PathEscape(room.RoomID) + "?" + q.Encode(), nil
}
