package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/state"
)

type pageInfo struct {
	CurrentPage int `json:"currentPage"`
	PerPage     int `json:"perPage"`
	LastPage    int `json:"lastPage"`
	Total       int `json:"total"`
}

// listPage fetches one page and checks the envelope: exactly pageInfo and
// data, data an array (never null).
func listPage(t *testing.T, c *clustertest.Cluster, path, tok string) (pageInfo, []map[string]any) {
	t.Helper()
	r := c.Do(0, "GET", path, tok, nil)
	if r.Status != 200 {
		t.Fatalf("GET %s: %d %s", path, r.Status, r.Body)
	}
	var env map[string]json.RawMessage
	r.JSON(t, &env)
	if len(env) != 2 || env["pageInfo"] == nil || !strings.HasPrefix(string(env["data"]), "[") {
		t.Fatalf("GET %s: envelope %s", path, r.Body)
	}
	var info pageInfo
	var data []map[string]any
	json.Unmarshal(env["pageInfo"], &info)
	json.Unmarshal(env["data"], &data)
	return info, data
}

func apply(t *testing.T, c *clustertest.Cluster, ct state.CommandType, body any) {
	t.Helper()
	if _, _, err := c.Node(0).Node().Apply(context.Background(), ct, body); err != nil {
		t.Fatal(err)
	}
}

// TestListPages: room, session, participant and delivery lists page through
// index walks with the documented envelope; every page of every list,
// including one past the end, equals the slice of the full list.
func TestListPages(t *testing.T) {
	c := newNode(t)
	tok := c.Token()
	var created []string // oldest first
	for i := 0; i < 9; i++ {
		body := map[string]any{"webhook": map[string]any{"endPoint": "https://hooks.example/x"}}
		if i == 4 {
			body["customRoomId"] = "custom-four"
		}
		var room struct{ RoomID string }
		r := c.Do(0, "POST", "/v2/rooms", tok, body)
		r.JSON(t, &room)
		created = append(created, room.RoomID)
	}
	newest := make([]string, len(created))
	for i, id := range created {
		newest[len(created)-1-i] = id
	}
	field := func(rows []map[string]any, k string) []string {
		out := []string{}
		for _, r := range rows {
			out = append(out, r[k].(string))
		}
		return out
	}
	checkAll := func(name, path string, want []string, key string, tok string) {
		t.Helper()
		for _, per := range []int{1, 4, 20} {
			last := max(1, (len(want)+per-1)/per)
			for page := 1; page <= last+1; page++ {
				info, data := listPage(t, c, fmt.Sprintf("%s%spage=%d&perPage=%d", path, map[bool]string{true: "&", false: "?"}[strings.Contains(path, "?")], page, per), tok)
				if info != (pageInfo{CurrentPage: page, PerPage: per, LastPage: last, Total: len(want)}) {
					t.Fatalf("%s page %d/%d: pageInfo %+v, total %d", name, page, per, info, len(want))
				}
				lo, hi := min((page-1)*per, len(want)), min(page*per, len(want))
				if got := field(data, key); !reflect.DeepEqual(got, want[lo:hi]) {
					t.Fatalf("%s page %d/%d: %v, want %v", name, page, per, got, want[lo:hi])
				}
			}
		}
	}
	checkAll("rooms", "/v2/rooms", newest, "roomId", tok)
	checkAll("rooms?query", "/v2/rooms?query=custom-four", []string{created[4]}, "roomId", tok)
	checkAll("rooms?query=roomId", "/v2/rooms?query="+created[2], []string{created[2]}, "roomId", tok)
	scoped := c.Token(func(o *auth.MintOptions) { o.RoomID = created[3] })
	checkAll("rooms (scoped)", "/v2/rooms", []string{created[3]}, "roomId", scoped)
	checkAll("rooms (scoped, query elsewhere)", "/v2/rooms?query="+created[2], []string{}, "roomId", scoped)

	// Sessions: three per room in rooms 0-2 (the last one of room 0 still
	// open), all starting at the same instant in a round: creation breaks
	// the tie.
	var sessions []string // oldest first
	n := 0
	id := func() string { n++; return fmt.Sprintf("%024x", n) }
	base := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for round := 0; round < 3; round++ {
		for room := 0; room < 3; room++ {
			at := base.Add(time.Duration(round) * time.Hour)
			sid := id()
			sessions = append(sessions, sid)
			apply(t, c, state.CmdParticipantJoin, state.ParticipantJoin{EventID: id(), RoomID: created[room], ParticipantID: "p", Name: "P", EdgeID: "e", At: at,
				NewSessionID: sid, NewDocID: id(), IDs: []string{id(), id()}})
			if round == 2 && room == 0 {
				continue
			}
			apply(t, c, state.CmdParticipantLeave, state.ParticipantLeave{EventID: id(), RoomID: created[room], ParticipantID: "p", EdgeID: "e", At: at.Add(time.Minute),
				IDs: []string{id(), id()}})
		}
	}
	rev := func(ids []string) []string {
		out := make([]string, len(ids))
		for i, s := range ids {
			out[len(ids)-1-i] = s
		}
		return out
	}
	checkAll("sessions", "/v2/sessions", rev(sessions), "id", tok)
	checkAll("sessions?status=ongoing", "/v2/sessions?status=ongoing", []string{sessions[6]}, "id", tok)
	checkAll("sessions?status=ended", "/v2/sessions?status=ended", rev(append(append([]string{}, sessions[:6]...), sessions[7:]...)), "id", tok)
	checkAll("sessions?roomId", "/v2/sessions?roomId="+created[1], []string{sessions[7], sessions[4], sessions[1]}, "id", tok)
	checkAll("sessions?customRoomId", "/v2/sessions?customRoomId=custom-four", []string{}, "id", tok)
	from, to := base.Add(time.Hour).UnixMilli(), base.Add(time.Hour).UnixMilli()
	checkAll("sessions?startDate&endDate", fmt.Sprintf("/v2/sessions?startDate=%d&endDate=%d", from, to), rev(sessions[3:6]), "id", tok)
	checkAll("sessions (scoped)", "/v2/sessions", []string{}, "id", scoped)
	scoped1 := c.Token(func(o *auth.MintOptions) { o.RoomID = created[1] })
	checkAll("sessions (scoped to room 1)", "/v2/sessions", []string{sessions[7], sessions[4], sessions[1]}, "id", scoped1)
	checkAll("sessions (scoped to room 1, status)", "/v2/sessions?status=ended&roomId="+created[1], []string{sessions[7], sessions[4], sessions[1]}, "id", scoped1)

	// Participants: five in the open session, two of them gone.
	open := sessions[6]
	for i := 0; i < 4; i++ {
		apply(t, c, state.CmdParticipantJoin, state.ParticipantJoin{EventID: id(), RoomID: created[0], ParticipantID: fmt.Sprintf("q%d", i), Name: "Q", EdgeID: "e",
			At: base.Add(3 * time.Hour), NewSessionID: id(), NewDocID: id(), IDs: []string{id(), id()}})
	}
	for _, q := range []string{"q1", "q3"} {
		apply(t, c, state.CmdParticipantLeave, state.ParticipantLeave{EventID: id(), RoomID: created[0], ParticipantID: q, EdgeID: "e", At: base.Add(4 * time.Hour),
			IDs: []string{id(), id()}})
	}
	for _, tc := range []struct {
		path string
		want []string
	}{{"/participants", []string{"p", "q0", "q1", "q2", "q3"}}, {"/participants/active", []string{"p", "q0", "q2"}}} {
		for page := 1; page <= 4; page++ {
			r := c.Do(0, "GET", fmt.Sprintf("/v2/sessions/%s%s?page=%d&perPage=2", open, tc.path, page), tok, nil)
			var env struct {
				PageInfo pageInfo        `json:"pageInfo"`
				Data     json.RawMessage `json:"data"`
			}
			r.JSON(t, &env)
			var sess struct {
				ID           string `json:"id"`
				Participants []struct {
					ParticipantID string `json:"participantId"`
				} `json:"participants"`
			}
			if tc.path == "/participants" {
				json.Unmarshal(env.Data, &sess) // one session object
			} else {
				var arr []json.RawMessage
				if json.Unmarshal(env.Data, &arr); len(arr) != 1 {
					t.Fatalf("active participants data is not a one-session array: %s", r.Body)
				}
				json.Unmarshal(arr[0], &sess)
			}
			last := (len(tc.want) + 1) / 2
			if r.Status != 200 || env.PageInfo != (pageInfo{CurrentPage: page, PerPage: 2, LastPage: last, Total: len(tc.want)}) || sess.ID != open {
				t.Fatalf("%s page %d: %d %s", tc.path, page, r.Status, r.Body)
			}
			got := []string{}
			for _, p := range sess.Participants {
				got = append(got, p.ParticipantID)
			}
			lo, hi := min((page-1)*2, len(tc.want)), min(page*2, len(tc.want))
			if !reflect.DeepEqual(got, tc.want[lo:hi]) {
				t.Fatalf("%s page %d: %v, want %v", tc.path, page, got, tc.want[lo:hi])
			}
		}
	}

	// Deliveries: every event above went to the rooms' endpoint, newest first.
	var all []string
	c.Node(0).Node().FSM().Read(func(s *state.Store) {
		for _, d := range s.PendingDeliveries(0) {
			all = append(all, d.ID)
		}
	})
	checkAll("deliveries", "/v2/webhooks/deliveries", rev(all), "id", tok)
	checkAll("deliveries?status=pending", "/v2/webhooks/deliveries?status=pending", rev(all), "id", tok)
	checkAll("deliveries?status=delivered", "/v2/webhooks/deliveries?status=delivered", []string{}, "id", tok)
	var room1 []string
	c.Node(0).Node().FSM().Read(func(s *state.Store) {
		for _, d := range s.PendingDeliveries(0) {
			if d.RoomID == created[1] {
				room1 = append(room1, d.ID)
			}
		}
	})
	checkAll("deliveries?roomId", "/v2/webhooks/deliveries?roomId="+created[1], rev(room1), "id", tok)
	checkAll("deliveries (scoped)", "/v2/webhooks/deliveries", rev(room1), "id", scoped1)
}
