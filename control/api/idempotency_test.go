package api_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/shared/egressapi"
)

// postKeyed sends a POST with an Idempotency-Key to node i.
func postKeyed(t *testing.T, c *clustertest.Cluster, i int, path, key, body string) clustertest.Response {
	t.Helper()
	return postKeyedAs(t, c, i, c.Token(), path, key, body)
}

func postKeyedAs(t *testing.T, c *clustertest.Cluster, i int, token, path, key, body string) clustertest.Response {
	t.Helper()
	req, err := http.NewRequest("POST", c.Node(i).URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return clustertest.Response{Status: resp.StatusCode, Body: out, Header: resp.Header}
}

// sameAnswer: a repeat got the first answer, marked as a replay.
func sameAnswer(t *testing.T, what string, first, again clustertest.Response) {
	t.Helper()
	if again.Status != first.Status || !bytes.Equal(again.Body, first.Body) {
		t.Fatalf("%s: repeat answered\n%d %s\nfirst answer was\n%d %s", what, again.Status, again.Body, first.Status, first.Body)
	}
	if again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("%s: repeat not marked Idempotent-Replayed (%q)", what, again.Header.Get("Idempotent-Replayed"))
	}
	if first.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("%s: first answer marked as a replay", what)
	}
}

func ongoingSession(t *testing.T, c *clustertest.Cluster, roomID string) bool {
	t.Helper()
	ongoing := false
	c.Node(0).Node().FSM().Read(func(s *state.Store) {
		if r, ok := s.RoomByRoomID(roomID); ok {
			_, ongoing = s.OngoingSession(r.ID)
		}
	})
	return ongoing
}

func joinParticipant(t *testing.T, c *clustertest.Cluster, roomID, sid string) {
	t.Helper()
	apply(t, c, state.CmdParticipantJoin, state.ParticipantJoin{EventID: "join-" + sid, RoomID: roomID, ParticipantID: "p1", Name: "P", EdgeID: "edge-x",
		At: time.Now().UTC(), NewSessionID: sid, NewDocID: sid[:22] + "ff", IDs: []string{sid[:22] + "a1", sid[:22] + "a2"}})
}

// TestIdempotencyKeyReplaysTheFirstAnswer: a POST repeated with its
// Idempotency-Key gets the stored first answer without its handler running
// again — whatever the state is now. Without stored answers the handler's
// checks see what the first run (or anyone since) changed.
func TestIdempotencyKeyReplaysTheFirstAnswer(t *testing.T) {
	c := newNode(t)

	// A session ended once: the repeat gets the same 200 body, not "no
	// active session" nor a body computed again.
	room := createRoom(t, c, "ik-end").RoomID
	joinParticipant(t, c, room, "eeeeeeeeeeeeeeeeeeeeee01")
	body := `{"roomId":"` + room + `"}`
	first := postKeyed(t, c, 0, "/v2/sessions/end", "end-1", body)
	if first.Status != 200 || ongoingSession(t, c, room) {
		t.Fatalf("end session: %d %s (ongoing %v)", first.Status, first.Body, ongoingSession(t, c, room))
	}
	sameAnswer(t, "sessions/end repeated", first, postKeyed(t, c, 0, "/v2/sessions/end", "end-1", body))

	// A 4xx is an answer too: the room did not exist; it does now, with a
	// session, and the repeat still answers 404 and ends nothing.
	body = `{"roomId":"ik-later"}`
	missing := postKeyed(t, c, 0, "/v2/sessions/end", "end-2", body)
	expectError(t, missing, 404, "")
	later := createRoom(t, c, "ik-later").RoomID
	joinParticipant(t, c, later, "eeeeeeeeeeeeeeeeeeeeee02")
	sameAnswer(t, "sessions/end of a room created since", missing, postKeyed(t, c, 0, "/v2/sessions/end", "end-2", body))
	if !ongoingSession(t, c, later) {
		t.Fatal("the repeat of a 404 ended the session of a room created since")
	}

	// The same key with another request: 422, nothing done.
	expectError(t, postKeyed(t, c, 0, "/v2/sessions/end", "end-2", `{"roomId":"`+later+`"}`), 422, "Idempotency-Key")
	if !ongoingSession(t, c, later) {
		t.Fatal("a key reused with another request ended a session")
	}

	// Creating a room: the repeat gets the same room, and no second one.
	rooms := roomCount(c)
	created := postKeyed(t, c, 0, "/v2/rooms", "create-1", `{"autoCloseConfig":{"type":"session-ends"}}`)
	if created.Status != 200 {
		t.Fatalf("create: %d %s", created.Status, created.Body)
	}
	sameAnswer(t, "rooms repeated", created, postKeyed(t, c, 0, "/v2/rooms", "create-1", `{"autoCloseConfig":{"type":"session-ends"}}`))
	// The router takes /V2/Rooms/ for /v2/rooms: so does the key.
	sameAnswer(t, "rooms repeated as /V2/Rooms/", created, postKeyed(t, c, 0, "/V2/Rooms/", "create-1", `{"autoCloseConfig":{"type":"session-ends"}}`))
	if n := roomCount(c); n != rooms+1 {
		t.Fatalf("%d rooms after a create and its repeat, want %d", n, rooms+1)
	}
}

// TestIdempotencyKeyRetryAnswersAreNotStored: a 503 asks the client to
// retry, so the retry runs the handler: here a stop whose edge is down
// (503), then the job fails; the retry learns that (409) instead of a
// stored 503.
func TestIdempotencyKeyRetryAnswersAreNotStored(t *testing.T) {
	c := egressNode(t, time.Hour)
	room := createRoom(t, c, "ik-stop")
	id := "abcdefabcdefabcdefabcdef"
	putJob(t, c, state.Job{ID: id, Kind: egressapi.KindComposite, UserID: room.UserID, APIKey: room.APIKey, RoomID: room.RoomID,
		SessionID: "111111111111111111111111", EdgeID: "edge-down", State: egressapi.StateRunning})
	body := `{"id":"` + id + `"}`
	first := postKeyed(t, c, 0, "/v2/recordings/stop", "stop-1", body)
	expectError(t, first, 503, "not reachable")
	if first.Header.Get("Retry-After") == "" {
		t.Fatalf("503 without Retry-After: %s", first.Body)
	}
	apply(t, c, state.CmdFailJobs, state.FailJobs{IDs: []string{id}, Reason: "edge lost", At: time.Now().UTC()})
	again := postKeyed(t, c, 0, "/v2/recordings/stop", "stop-1", body)
	expectError(t, again, 409, "already ended")
	if again.Header.Get("Idempotent-Replayed") != "" {
		t.Fatal("the retry's answer is marked as a replay")
	}
	// The 409 is an answer: it is stored.
	sameAnswer(t, "stop after the retry", again, postKeyed(t, c, 0, "/v2/recordings/stop", "stop-1", body))
}

// TestIdempotencyKeyAnswersStayWithTheirCaller: a stored answer is only
// replayed to a caller with the same authority. A room-scoped token that
// sends the request a full token sent, with the same key, is not handed
// the full token's answer (another room's data, "deactivated"): its own
// request runs and is refused. A token minted again for the same caller
// (another expiry) gets the stored answer.
func TestIdempotencyKeyAnswersStayWithTheirCaller(t *testing.T) {
	c := newNode(t)
	a := createRoom(t, c, "mine").RoomID
	b := createRoom(t, c, "theirs").RoomID
	body := `{"roomId":"` + b + `"}`
	first := postKeyed(t, c, 0, "/v2/rooms/deactivate", "deact-1", body)
	if first.Status != 200 {
		t.Fatalf("deactivate: %d %s", first.Status, first.Body)
	}
	scoped := c.Token(func(o *auth.MintOptions) { o.RoomID = a })
	r := postKeyedAs(t, c, 0, scoped, "/v2/rooms/deactivate", "deact-1", body)
	expectError(t, r, 403, "scoped")
	if r.Header.Get("Idempotent-Replayed") != "" {
		t.Fatal("a room-scoped token was handed a full token's stored answer")
	}
	again := c.Token(func(o *auth.MintOptions) { o.TTL = 2 * time.Hour })
	sameAnswer(t, "the same caller with a token minted again", first, postKeyedAs(t, c, 0, again, "/v2/rooms/deactivate", "deact-1", body))
}
