package api_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/api"
	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/control/state"
)

func newNode(t *testing.T, configure ...func(*server.Config)) *clustertest.Cluster {
	return clustertest.New(t, 1, clustertest.Options{Configure: func(i int, cfg *server.Config) {
		for _, f := range configure {
			f(cfg)
		}
	}})
}

type errBody struct {
	StatusCode int    `json:"statusCode"`
	Error      string `json:"error"`
	Message    string `json:"message"`
}

func expectError(t *testing.T, r clustertest.Response, status int, contains string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	var e errBody
	if err := json.Unmarshal(r.Body, &e); err != nil || e.Message == "" || e.Error == "" {
		t.Fatalf("error body is not a JSON error: %s", r.Body)
	}
	if contains != "" && !strings.Contains(e.Message, contains) {
		t.Fatalf("message %q does not mention %q", e.Message, contains)
	}
}

func roomCount(c *clustertest.Cluster) int {
	n := 0
	c.Node(0).Node().FSM().Read(func(s *state.Store) { n = s.RoomCount() })
	return n
}

// hs256 signs arbitrary header/claims JSON, to build tokens libraries refuse to make.
func hs256(header, claims string, secret []byte) string {
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(claims))
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(m.Sum(nil))
}

func TestAuthentication(t *testing.T) {
	c := newNode(t)
	now := time.Now().Unix()
	secret := []byte(c.APISecret)
	legacy := hs256(`{"alg":"HS256","typ":"JWT"}`, fmt.Sprintf(`{"apikey":%q,"permissions":["allow_join","allow_mod"],"iat":%d}`, c.APIKey, now), secret)
	cases := []struct {
		name   string
		authz  string
		status int
		msg    string
	}{
		{"bare crawler token", c.Token(), 200, ""},
		{"bearer prefix", "Bearer " + c.Token(), 200, ""},
		{"legacy token without version, roles or exp", legacy, 200, ""},
		{"basic auth with the secret", "Basic " + base64.StdEncoding.EncodeToString([]byte(c.APISecret+":")), 200, ""},
		{"missing header", "", 401, "missing"},
		{"garbage", "not-a-jwt", 401, "malformed"},
		{"wrong secret", c.Token(func(o *auth.MintOptions) { o.Secret = []byte("wrong-secret-wrong-secret") }), 401, "signature"},
		{"expired", c.Token(func(o *auth.MintOptions) { o.Now = time.Now().Add(-3 * time.Hour); o.TTL = time.Hour }), 401, "expired"},
		{"unknown apikey", c.Token(func(o *auth.MintOptions) { o.APIKey = "nope" }), 401, ""},
		{"alg none", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
			base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"apikey":%q,"permissions":["allow_join"]}`, c.APIKey))) + ".", 401, ""},
		{"HS512", func() string {
			h := hs256(`{"alg":"HS512","typ":"JWT"}`, fmt.Sprintf(`{"apikey":%q,"permissions":["allow_join"]}`, c.APIKey), secret)
			return h
		}(), 401, ""},
		{"rtc-only token on REST", c.Token(func(o *auth.MintOptions) { o.Roles = []string{auth.RoleRTC} }), 403, "crawler"},
		{"roles without version 2", hs256(`{"alg":"HS256","typ":"JWT"}`, fmt.Sprintf(`{"apikey":%q,"permissions":["allow_join"],"roles":["crawler"]}`, c.APIKey), secret), 401, "version"},
		{"wrong basic secret", "Basic " + base64.StdEncoding.EncodeToString([]byte("nope-nope-nope-nope:")), 401, ""},
		{"unknown scheme", "Digest abc", 401, "scheme"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := c.Do(0, "GET", "/v2/rooms", tc.authz, nil)
			if tc.status == 200 {
				if r.Status != 200 {
					t.Fatalf("got %d: %s", r.Status, r.Body)
				}
				return
			}
			expectError(t, r, tc.status, tc.msg)
		})
	}
}

func TestRoomScopedToken(t *testing.T) {
	c := newNode(t)
	var a, b struct{ RoomID, CustomRoomID string }
	c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{"customRoomId": "room-a"}).JSON(t, &a)
	c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{"customRoomId": "room-b"}).JSON(t, &b)
	scoped := c.Token(func(o *auth.MintOptions) { o.RoomID = a.RoomID })
	if r := c.Do(0, "GET", "/v2/rooms/"+a.RoomID, scoped, nil); r.Status != 200 {
		t.Fatalf("scoped token cannot read its room: %d %s", r.Status, r.Body)
	}
	expectError(t, c.Do(0, "GET", "/v2/rooms/"+b.RoomID, scoped, nil), 403, "scoped")
	expectError(t, c.Do(0, "GET", "/v2/rooms/room-b", scoped, nil), 403, "scoped")
	expectError(t, c.Do(0, "POST", "/v2/rooms/deactivate", scoped, map[string]any{"roomId": b.RoomID}), 403, "scoped")
	var list struct {
		Data     []struct{ RoomID string }
		PageInfo struct{ Total int }
	}
	c.Do(0, "GET", "/v2/rooms", scoped, nil).JSON(t, &list)
	if list.PageInfo.Total != 1 || list.Data[0].RoomID != a.RoomID {
		t.Fatalf("scoped list leaks rooms: %+v", list)
	}
	// Room B is unchanged.
	var got struct{ Disabled bool }
	c.Do(0, "GET", "/v2/rooms/"+b.RoomID, c.Token(), nil).JSON(t, &got)
	if got.Disabled {
		t.Fatal("forbidden deactivate changed the room")
	}
	// No room may take another's roomId or id as its customRoomId: a token
	// scoped to that name would cover both rooms.
	var bDoc struct{ ID string }
	c.Do(0, "GET", "/v2/rooms/"+b.RoomID, c.Token(), nil).JSON(t, &bDoc)
	for _, name := range []string{a.RoomID, bDoc.ID} {
		expectError(t, c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{"customRoomId": name}), 400, "another room")
	}
	c.Do(0, "GET", "/v2/rooms", scoped, nil).JSON(t, &list)
	if list.PageInfo.Total != 1 || list.Data[0].RoomID != a.RoomID {
		t.Fatalf("after refused creates, the scoped list: %+v", list)
	}
	// Its own customRoomId again is the idempotent create.
	var again struct{ RoomID string }
	if r := c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{"customRoomId": "room-a"}); r.Status != 200 {
		t.Fatalf("create with an existing customRoomId: %d %s", r.Status, r.Body)
	} else if r.JSON(t, &again); again.RoomID != a.RoomID {
		t.Fatalf("idempotent create answered room %s, want %s", again.RoomID, a.RoomID)
	}
}

func TestRoomsAPI(t *testing.T) {
	c := newNode(t)
	tok := c.Token()
	body := map[string]any{"customRoomId": "standup", "webhook": map[string]any{"endPoint": "https://hooks.example.com/v", "events": []string{"participant-joined", "recording-*"}},
		"autoCloseConfig": map[string]any{"type": "session-end-and-deactivate", "duration": 60}, "geoFence": "eu001", "maxParticipants": 4, "region": "ignored"}
	r := c.Do(0, "POST", "/v2/rooms", tok, body)
	if r.Status != 200 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	var room map[string]any
	r.JSON(t, &room)
	roomID := room["roomId"].(string)
	for _, k := range []string{"roomId", "customRoomId", "userId", "disabled", "createdAt", "updatedAt", "id", "links"} {
		if _, ok := room[k]; !ok {
			t.Errorf("create response lacks %q: %s", k, r.Body)
		}
	}
	if len(room["id"].(string)) != 24 || !strings.HasSuffix(room["createdAt"].(string), "Z") {
		t.Errorf("id/createdAt shape: %s", r.Body)
	}
	if room["maxParticipants"].(float64) != 4 {
		t.Errorf("maxParticipants not stored: %s", r.Body)
	}
	links := room["links"].(map[string]any)
	if links["get_room"] != c.Node(0).URL()+"/v2/rooms/"+roomID {
		t.Errorf("links.get_room = %v", links["get_room"])
	}
	// Idempotent create.
	var again map[string]any
	c.Do(0, "POST", "/v2/rooms", tok, map[string]any{"customRoomId": "standup"}).JSON(t, &again)
	if again["roomId"] != roomID {
		t.Fatalf("customRoomId create is not idempotent: %v vs %v", again["roomId"], roomID)
	}
	// Get by roomId, customRoomId and document id; list embeds user.
	for _, ref := range []string{roomID, "standup", room["id"].(string)} {
		var got map[string]any
		r := c.Do(0, "GET", "/v2/rooms/"+ref, tok, nil)
		r.JSON(t, &got)
		if r.Status != 200 || got["roomId"] != roomID || got["user"] == nil {
			t.Fatalf("get %s: %d %s", ref, r.Status, r.Body)
		}
	}
	for _, method := range []string{"GET", "POST"} {
		if r := c.Do(0, method, "/v2/rooms/validate/"+roomID, tok, nil); r.Status != 200 {
			t.Fatalf("%s validate: %d %s", method, r.Status, r.Body)
		}
	}
	// Trailing slash is the same route.
	if r := c.Do(0, "GET", "/v2/rooms/", tok, nil); r.Status != 200 {
		t.Fatalf("trailing slash: %d", r.Status)
	}
	// Paging.
	for i := 0; i < 4; i++ {
		c.Do(0, "POST", "/v2/rooms", tok, nil)
	}
	var page struct {
		PageInfo struct{ CurrentPage, PerPage, LastPage, Total int }
		Data     []map[string]any
	}
	c.Do(0, "GET", "/v2/rooms?page=2&perPage=2", tok, nil).JSON(t, &page)
	if page.PageInfo.Total != 5 || page.PageInfo.LastPage != 3 || page.PageInfo.CurrentPage != 2 || len(page.Data) != 2 {
		t.Fatalf("paging: %+v", page.PageInfo)
	}
	// Deactivate: customRoomId refused with 402, roomId works and echoes legacy keys.
	expectError(t, c.Do(0, "POST", "/v2/rooms/deactivate", tok, map[string]any{"roomId": "standup"}), 402, "roomId")
	var deact map[string]any
	r = c.Do(0, "POST", "/v2/rooms/deactivate", tok, map[string]any{"roomId": roomID})
	r.JSON(t, &deact)
	if r.Status != 200 || deact["disabled"] != true || deact["meetingId"] != roomID || deact["userMeetingId"] != "standup" {
		t.Fatalf("deactivate: %d %s", r.Status, r.Body)
	}
	var v map[string]any
	c.Do(0, "GET", "/v2/rooms/validate/"+roomID, tok, nil).JSON(t, &v)
	if v["disabled"] != true {
		t.Fatalf("validate after deactivate: %v", v)
	}
}

// TestBadInputChangesNothing: every malformed request gets the right 4xx with
// a JSON error naming the problem, and the state is untouched.
func TestBadInputChangesNothing(t *testing.T) {
	c := newNode(t)
	tok := c.Token()
	big := `{"customRoomId":"` + strings.Repeat("x", 1<<20+10) + `"}`
	cases := []struct {
		name, method, path string
		body               any
		status             int
		msg                string
	}{
		{"malformed json", "POST", "/v2/rooms", `{"customRoomId":`, 400, "malformed"},
		{"not an object", "POST", "/v2/rooms", `[1,2]`, 400, "object"},
		{"trailing data", "POST", "/v2/rooms", `{} {}`, 400, "after"},
		{"customRoomId type", "POST", "/v2/rooms", `{"customRoomId":5}`, 400, "customRoomId"},
		{"empty customRoomId", "POST", "/v2/rooms", `{"customRoomId":"  "}`, 400, "customRoomId"},
		{"webhook url", "POST", "/v2/rooms", `{"webhook":{"endPoint":"ftp://x"}}`, 400, "webhook.endPoint"},
		{"webhook events type", "POST", "/v2/rooms", `{"webhook":{"endPoint":"https://x.example","events":"all"}}`, 400, "events"},
		{"webhook event pattern", "POST", "/v2/rooms", `{"webhook":{"endPoint":"https://x.example","events":["Bad Event"]}}`, 400, "webhook.events[0]"},
		{"autoClose type", "POST", "/v2/rooms", `{"autoCloseConfig":{"type":"never"}}`, 400, "autoCloseConfig.type"},
		{"autoClose duration", "POST", "/v2/rooms", `{"autoCloseConfig":{"type":"session-ends","duration":-1}}`, 400, "duration"},
		{"geoFence", "POST", "/v2/rooms", `{"geoFence":"mars001"}`, 400, "geoFence"},
		{"maxParticipants zero", "POST", "/v2/rooms", `{"maxParticipants":0}`, 400, "maxParticipants"},
		{"maxParticipants fraction", "POST", "/v2/rooms", `{"maxParticipants":2.5}`, 400, "maxParticipants"},
		{"maxParticipants string", "POST", "/v2/rooms", `{"maxParticipants":"4"}`, 400, "maxParticipants"},
		{"allowedParticipantIds", "POST", "/v2/rooms", `{"allowedParticipantIds":["has space"]}`, 400, "allowedParticipantIds[0]"},
		{"oversize body", "POST", "/v2/rooms", big, 413, "1 MiB"},
		{"unknown room", "GET", "/v2/rooms/abcd-efgh-ijkl", nil, 404, "not found"},
		{"validate unknown room", "GET", "/v2/rooms/validate/abcd-efgh-ijkl", nil, 400, "not found"},
		{"deactivate without roomId", "POST", "/v2/rooms/deactivate", `{}`, 400, "roomId"},
		{"deactivate roomId type", "POST", "/v2/rooms/deactivate", `{"roomId":1}`, 400, "roomId"},
		{"deactivate unknown", "POST", "/v2/rooms/deactivate", `{"roomId":"abcd-efgh-ijkl"}`, 404, "not found"},
		{"bad page", "GET", "/v2/rooms?page=0", nil, 400, "page"},
		{"bad perPage", "GET", "/v2/rooms?perPage=abc", nil, 400, "perPage"},
		{"session id format", "GET", "/v2/sessions/xyz", nil, 400, "24"},
		{"unknown session", "GET", "/v2/sessions/0123456789abcdef01234567", nil, 404, "not found"},
		{"sessions status", "GET", "/v2/sessions?status=paused", nil, 400, "status"},
		{"sessions startDate", "GET", "/v2/sessions?startDate=yesterday", nil, 400, "startDate"},
		{"end session no room", "POST", "/v2/sessions/end", `{}`, 400, "roomId"},
		{"remove participant no id", "POST", "/v2/sessions/participants/remove", `{"roomId":"x"}`, 400, "participantId"},
		// This node runs without the egress plugin (egress_test.go covers the routes).
		{"recording without egress", "POST", "/v2/recordings/start", `{"roomId":"x"}`, 503, "not enabled"},
		{"hls without egress", "GET", "/v2/hls/abcd-efgh-ijkl/active", nil, 503, "not enabled"},
		{"unknown route", "GET", "/v2/nothing-here", nil, 404, "route"},
		{"auth api-key missing", "POST", "/auth/api-key", `{}`, 400, "apiKey"},
		{"auth api-key wrong", "POST", "/auth/api-key", `{"apiKey":"wrong-secret-value"}`, 401, ""},
		{"refresh missing", "POST", "/auth/refresh", `{}`, 400, "refreshToken"},
		{"refresh unknown", "POST", "/auth/refresh", `{"refreshToken":"nope"}`, 401, ""},
		{"join with a crawler-only token", "POST", "/v2/rooms/abcd-efgh-ijkl/join", `{}`, 403, "rtc"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := roomCount(c)
			authz := tok
			if strings.HasPrefix(tc.path, "/auth/") {
				authz = ""
			}
			expectError(t, c.Do(0, tc.method, tc.path, authz, tc.body), tc.status, tc.msg)
			if after := roomCount(c); after != before {
				t.Fatalf("bad request changed state: %d rooms -> %d", before, after)
			}
		})
	}
	// The server still serves.
	if r := c.Do(0, "GET", "/healthz", "", nil); r.Status != 200 {
		t.Fatalf("healthz after bad input: %d", r.Status)
	}
}

func TestAPIKeyExchangeAndRefresh(t *testing.T) {
	c := newNode(t)
	var pair struct {
		TokenType    string `json:"token_type"`
		ExpiresIn    int    `json:"expires_in"`
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	r := c.Do(0, "POST", "/auth/api-key", "", map[string]string{"apiKey": c.APISecret})
	r.JSON(t, &pair)
	if r.Status != 200 || pair.TokenType != "Bearer" || pair.ExpiresIn != 3600 || pair.AccessToken == "" || pair.RefreshToken == "" {
		t.Fatalf("api-key exchange: %d %s", r.Status, r.Body)
	}
	if r := c.Do(0, "GET", "/v2/rooms", "Bearer "+pair.AccessToken, nil); r.Status != 200 {
		t.Fatalf("access token rejected: %d %s", r.Status, r.Body)
	}
	old := pair.RefreshToken
	r = c.Do(0, "POST", "/auth/refresh", "", map[string]string{"refreshToken": old})
	r.JSON(t, &pair)
	if r.Status != 200 || pair.RefreshToken == old {
		t.Fatalf("refresh: %d %s", r.Status, r.Body)
	}
	expectError(t, c.Do(0, "POST", "/auth/refresh", "", map[string]string{"refreshToken": old}), 401, "")

	// The refresh token is stored hashed, never in clear: the replicated
	// state (what a snapshot persists and every follower holds) must key the
	// one live token by its SHA-256 (hex), as state.RefreshToken documents,
	// and contain neither token's text. The hash is computed here rather than
	// with auth.TokenHash so that a reversible "hash" (say, hex of the token)
	// cannot pass. The Store keeps its tables unexported, so read them the
	// way Raft does.
	snap := fsmSnapshot(t, c.Node(0).Node().FSM())
	var stored struct {
		Refresh map[string]state.RefreshToken `json:"refresh"`
	}
	if err := json.Unmarshal(snap, &stored); err != nil {
		t.Fatalf("decode snapshot: %v", err)
	}
	sum := sha256.Sum256([]byte(pair.RefreshToken))
	want := hex.EncodeToString(sum[:])
	if len(stored.Refresh) != 1 {
		t.Fatalf("stored refresh tokens: %d, want 1 (the used one is consumed): %v", len(stored.Refresh), stored.Refresh)
	}
	rt, ok := stored.Refresh[want]
	if !ok {
		t.Fatalf("refresh token not stored under its hash %s; stored keys: %v", want, stored.Refresh)
	}
	if rt.APIKey != c.APIKey {
		t.Fatalf("refresh token belongs to %q, want %q", rt.APIKey, c.APIKey)
	}
	for _, tok := range []string{pair.RefreshToken, old} {
		if strings.Contains(string(snap), tok) {
			t.Fatalf("refresh token %q stored in clear text", tok)
		}
	}
}

// fsmSnapshot returns the JSON Raft would persist (S2 framed) for the FSM's state.
func fsmSnapshot(t *testing.T, fsm *state.FSM) []byte {
	t.Helper()
	s, err := fsm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	var sink memSink
	if err := s.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	r, err := state.OpenSnapshot(&sink.Buffer)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// memSink is a raft.SnapshotSink that keeps the snapshot in memory.
type memSink struct{ bytes.Buffer }

func (*memSink) ID() string    { return "test" }
func (*memSink) Cancel() error { return nil }
func (*memSink) Close() error  { return nil }

func TestKeyRevocationInvalidatesTokens(t *testing.T) {
	c := newNode(t)
	admin := "Bearer " + c.AdminToken
	var created struct{ APIKey, Secret string }
	r := c.Do(0, "POST", "/admin/v1/keys", admin, map[string]any{"name": "second"})
	r.JSON(t, &created)
	if r.Status != 201 || created.Secret == "" {
		t.Fatalf("create key: %d %s", r.Status, r.Body)
	}
	tok := c.Token(func(o *auth.MintOptions) { o.APIKey, o.Secret = created.APIKey, []byte(created.Secret) })
	if r := c.Do(0, "GET", "/v2/rooms", tok, nil); r.Status != 200 {
		t.Fatalf("new key rejected: %d %s", r.Status, r.Body)
	}
	// Keys are separate projects: the first key's rooms are not visible.
	c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{"customRoomId": "k1-room"})
	var list struct{ PageInfo struct{ Total int } }
	c.Do(0, "GET", "/v2/rooms", tok, nil).JSON(t, &list)
	if list.PageInfo.Total != 0 {
		t.Fatalf("second project sees %d rooms", list.PageInfo.Total)
	}
	if r := c.Do(0, "DELETE", "/admin/v1/keys/"+created.APIKey, admin, nil); r.Status != 200 {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	expectError(t, c.Do(0, "GET", "/v2/rooms", tok, nil), 401, "revoked")
	expectError(t, c.Do(0, "GET", "/v2/rooms", "Basic "+base64.StdEncoding.EncodeToString([]byte(created.Secret+":")), nil), 401, "")
	expectError(t, c.Do(0, "GET", "/admin/v1/keys", "Bearer wrong", nil), 401, "admin")
	// Secrets never sit in the replicated state in clear text.
	var snapshot []byte
	c.Node(0).Node().FSM().Read(func(s *state.Store) {
		for _, k := range s.APIKeys() {
			b, _ := json.Marshal(k)
			snapshot = append(snapshot, b...)
		}
	})
	if strings.Contains(string(snapshot), created.Secret) || strings.Contains(string(snapshot), c.APISecret) {
		t.Fatal("API secret stored in clear text")
	}
}

func TestRateLimit(t *testing.T) {
	c := newNode(t, func(cfg *server.Config) { cfg.API.RateLimitPerKey, cfg.API.RateBurstPerKey = 1, 3 })
	tok := c.Token()
	var limited clustertest.Response
	for i := 0; i < 10; i++ {
		if r := c.Do(0, "GET", "/v2/rooms", tok, nil); r.Status == 429 {
			limited = r
			break
		}
	}
	expectError(t, limited, 429, "rate limit")
	if limited.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
}

func TestSigningSecretAndPublicKey(t *testing.T) {
	c := newNode(t)
	var s struct{ Secret string }
	c.Do(0, "GET", "/v2/webhooks/signing-secret", c.Token(), nil).JSON(t, &s)
	if !strings.HasPrefix(s.Secret, "whsec_") {
		t.Fatalf("secret %q", s.Secret)
	}
	var pk struct{ PublicKey string }
	c.Do(0, "GET", "/v2/public/rsa-public-key", "", nil).JSON(t, &pk)
	if !strings.HasPrefix(pk.PublicKey, "-----BEGIN PUBLIC KEY-----") {
		t.Fatalf("public key %q", pk.PublicKey)
	}
	expectError(t, c.Do(0, "GET", "/v2/webhooks/signing-secret", c.Token(func(o *auth.MintOptions) { o.RoomID = "abcd-efgh-ijkl" }), nil), 403, "")
}

var _ = api.MaxBodyBytes

func TestMeetingLink(t *testing.T) {
	c := newNode(t)
	var room struct{ RoomID string }
	c.Do(0, "POST", "/v2/rooms", c.Token(), nil).JSON(t, &room)
	var link struct{ URL, Token, ExpiresAt string }
	r := c.Do(0, "POST", "/v2/rooms/"+room.RoomID+"/meeting-link", c.Token(), map[string]any{"name": "Guest", "expiresIn": 3600, "permissions": []string{"ask_join"}})
	r.JSON(t, &link)
	if r.Status != 200 || !strings.HasPrefix(link.URL, c.Node(0).URL()+"/meet/"+room.RoomID+"?") || !strings.Contains(link.URL, "name=Guest") {
		t.Fatalf("meeting link: %d %s", r.Status, r.Body)
	}
	p, err := c.Node(0).API().Authenticator().VerifyJWT(link.Token)
	if err != nil {
		t.Fatal(err)
	}
	if p.Claims.RoomID != room.RoomID || !p.HasRole(auth.RoleRTC) || p.HasRole(auth.RoleCrawler) || p.CanJoin() != nil {
		t.Fatalf("link token claims: %+v", p.Claims)
	}
	if exp := p.Claims.ExpiresAt.Time; time.Until(exp) > time.Hour+time.Minute || time.Until(exp) < 59*time.Minute {
		t.Fatalf("link expires at %v", exp)
	}
	// The link token can join but cannot call the REST API.
	expectError(t, c.Do(0, "GET", "/v2/rooms", link.Token, nil), 403, "crawler")
	expectError(t, c.Do(0, "POST", "/v2/rooms/"+room.RoomID+"/meeting-link", c.Token(), map[string]any{"permissions": []string{"ask_join", "allow_mod"}}), 400, "permissions")
	expectError(t, c.Do(0, "POST", "/v2/rooms/"+room.RoomID+"/meeting-link", c.Token(), map[string]any{"expiresIn": 5}), 400, "expiresIn")
	expectError(t, c.Do(0, "POST", "/v2/rooms/nope-nope-nope/meeting-link", c.Token(), nil), 404, "")
}

// TestMeetingLinkStaysWithinTheCallersToken: a token held by a guest or a
// participant (one that names a participant, or may only ask to join)
// mints links for its own participant only, with no more than its
// permissions, no later expiry and no media rights it lacks; the app's
// server token mints any link of its rooms.
func TestMeetingLinkStaysWithinTheCallersToken(t *testing.T) {
	c := newNode(t)
	var room struct{ RoomID string }
	c.Do(0, "POST", "/v2/rooms", c.Token(), nil).JSON(t, &room)
	link := "/v2/rooms/" + room.RoomID + "/meeting-link"
	no := false
	guest := c.Token(func(o *auth.MintOptions) {
		o.Roles, o.Permissions, o.RoomID, o.ParticipantID, o.CanPublish, o.TTL = nil, []string{auth.PermAskJoin}, room.RoomID, "guest9", &no, 10*time.Minute
	})
	carol := c.Token(func(o *auth.MintOptions) {
		o.Permissions, o.RoomID, o.ParticipantID = []string{auth.PermAllowJoin}, room.RoomID, "carol"
	})
	expectError(t, c.Do(0, "POST", link, guest, map[string]any{"permissions": []string{"allow_join", "allow_mod"}, "participantId": "alice"}), 403, "participant")
	expectError(t, c.Do(0, "POST", link, guest, map[string]any{"permissions": []string{"allow_join"}}), 403, "cannot mint a link with")
	expectError(t, c.Do(0, "POST", link, guest, map[string]any{"canPublish": true}), 403, "may not publish")
	expectError(t, c.Do(0, "POST", link, carol, map[string]any{"permissions": []string{"allow_mod"}, "participantId": "zed"}), 403, "participant")
	expectError(t, c.Do(0, "POST", link, carol, map[string]any{"permissions": []string{"allow_mod"}}), 403, "cannot mint a link with")

	claimsOf := func(tok string, body map[string]any) auth.Claims {
		t.Helper()
		var out struct{ Token string }
		r := c.Do(0, "POST", link, tok, body)
		if r.Status != 200 {
			t.Fatalf("meeting link %v: %d %s", body, r.Status, r.Body)
		}
		r.JSON(t, &out)
		p, err := c.Node(0).API().Authenticator().VerifyJWT(out.Token)
		if err != nil {
			t.Fatal(err)
		}
		return p.Claims
	}
	// What the guest may mint: its own kind of link, no longer than its token.
	g := claimsOf(guest, map[string]any{"expiresIn": 30 * 24 * 3600})
	if g.ParticipantID != "guest9" || strings.Join(g.Permissions, ",") != "ask_join" || g.CanPublish == nil || *g.CanPublish ||
		time.Until(g.ExpiresAt.Time) > 11*time.Minute {
		t.Fatalf("the guest's link: %+v (expires %v)", g, g.ExpiresAt)
	}
	if cl := claimsOf(carol, map[string]any{"permissions": []string{"ask_join"}}); cl.ParticipantID != "carol" {
		t.Fatalf("carol's link for herself: %+v", cl)
	}
	// The server's token: a moderator's link for anyone.
	if s := claimsOf(c.Token(), map[string]any{"permissions": []string{"allow_join", "allow_mod"}, "participantId": "zed"}); s.ParticipantID != "zed" || strings.Join(s.Permissions, ",") != "allow_join,allow_mod" {
		t.Fatalf("the server's link: %+v", s)
	}
}

func TestCORSPreflight(t *testing.T) {
	c := newNode(t)
	req, _ := http.NewRequest("OPTIONS", c.Node(0).URL()+"/v2/rooms/abcd-efgh-ijkl/join", nil)
	req.Header.Set("Origin", "https://app.example.com")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") == "" ||
		!strings.Contains(strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")), "authorization") {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
}

// TestMetricsSurviveConcurrentRequests: label values are copied out of
// fasthttp's reused buffers, so /metrics stays valid under load.
func TestMetricsSurviveConcurrentRequests(t *testing.T) {
	c := newNode(t)
	tok := c.Token()
	done := make(chan struct{})
	for w := 0; w < 4; w++ {
		go func(w int) {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 25; i++ {
				if w%2 == 0 {
					c.Do(0, "POST", "/v2/rooms", tok, nil)
				} else {
					c.Do(0, "GET", "/v2/rooms/abcd-efgh-ijkl", tok, nil)
				}
			}
		}(w)
	}
	for w := 0; w < 4; w++ {
		<-done
	}
	r := c.Do(0, "GET", "/metrics", "", nil)
	if r.Status != 200 || !strings.Contains(string(r.Body), `meridian_api_requests_total{method="POST",route="/v2/rooms",status="200"}`) {
		t.Fatalf("/metrics after concurrent requests: %d\n%.2000s", r.Status, r.Body)
	}
	for _, line := range strings.Split(string(r.Body), "\n") {
		if strings.HasPrefix(line, "meridian_api_requests_total{") && !strings.Contains(line, `method="POST"`) && !strings.Contains(line, `method="GET"`) {
			t.Fatalf("corrupted label: %s", line)
		}
	}
}
