package e2e

import (
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/auth"
)

// TestParticipantScopedJoin: an rtc token that names a participant joins
// only as that participant, and a room's allowedParticipantIds admits no
// one else (docs/security.md, "Scoping").
func TestParticipantScopedJoin(t *testing.T) {
	c := placementCluster(t, 1, 5*time.Second)
	startAgent(t, c, "edge-a", "local")
	var room, closed struct{ RoomID string }
	c.Do(0, "POST", "/v2/rooms", c.Token(), nil).JSON(t, &room)
	c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{"allowedParticipantIds": []string{"alice"}}).JSON(t, &closed)
	rtc := func(pid string) string {
		return c.Token(func(o *auth.MintOptions) {
			o.Roles, o.Permissions, o.ParticipantID = []string{auth.RoleRTC}, []string{auth.PermAllowJoin}, pid
		})
	}
	join := func(roomID, tok string, body map[string]any) (int, string) {
		var out struct{ ParticipantID string }
		r := c.Do(0, "POST", "/v2/rooms/"+roomID+"/join", tok, body)
		if r.Status == 200 {
			r.JSON(t, &out)
		}
		return r.Status, out.ParticipantID
	}
	if st, _ := join(room.RoomID, rtc("alice"), map[string]any{"participantId": "mallory"}); st != 403 {
		t.Errorf("a token for alice joined as mallory: %d", st)
	}
	if st, pid := join(room.RoomID, rtc("alice"), map[string]any{}); st != 200 || pid != "alice" {
		t.Errorf("a token for alice: %d as %q", st, pid)
	}
	if st, _ := join(closed.RoomID, rtc(""), map[string]any{"participantId": "mallory"}); st != 403 {
		t.Errorf("mallory joined a room that allows only alice: %d", st)
	}
	if st, pid := join(closed.RoomID, rtc(""), map[string]any{"participantId": "alice"}); st != 200 || pid != "alice" {
		t.Errorf("alice in her room: %d as %q", st, pid)
	}
}
