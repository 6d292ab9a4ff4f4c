package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"

	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/edge/signal/signaltest"
	"github.com/meridian-video/meridian/shared/edgeapi"
	wire "github.com/meridian-video/meridian/shared/signal"
	"github.com/meridian-video/meridian/shared/ticket"
)

// TestPinnedRoomNeverLeaks tries to get a room pinned to the EU onto an
// edge in Canada by every route there is — placement from far away, a
// replayed ticket, a forged one, a claim through the control plane, a
// cascade leg with a control-signed ticket, TURN on the Canadian edge — and
// checks the session audit never names a region outside the pin.
func TestPinnedRoomNeverLeaks(t *testing.T) {
	m := startMulti(t, 1, edgeSpec{id: "paris-1", region: "eu-west"}, edgeSpec{id: "frankfurt-1", region: "eu-central"},
		edgeSpec{id: "montreal-1", region: "ca-east"})
	room := m.room(map[string]any{"pin": map[string]any{"jurisdictions": []string{"eu"}}})
	// Joiners from Canada are served in the EU.
	alice := m.session(0, room, "alice", "ca-east")
	bob := m.session(0, room, "bob", "ca-east")
	for _, s := range []*signaltest.Session{alice, bob} {
		if e := s.EdgeID(); e != "paris-1" && e != "frankfurt-1" {
			t.Fatalf("pinned room placed on %s", e)
		}
	}
	clustertest.Eventually(t, 15*time.Second, hearsSince(nil, []*signaltest.Session{alice, bob}, []*signaltest.Session{alice, bob}))
	montreal := m.edge("montreal-1")
	montrealSignal := "ws://" + strings.TrimPrefix(m.specURL("montreal-1"), "http://") + "/rtc"

	// 1. A ticket issued for an EU edge, replayed at the Canadian edge.
	st, ja, body := m.join(0, room, "carol", map[string]any{"region": "ca-east"})
	if st != 200 {
		t.Fatalf("join: %d %s", st, body)
	}
	for _, e := range ja.Edges {
		if e.Region == "ca-east" {
			t.Fatalf("pinned room offered candidate %s in ca-east", e.EdgeID)
		}
	}
	if code := signalJoinCode(t, montrealSignal, ja.Edges[0].Ticket); code != wire.CodeWrongEdge {
		t.Fatalf("replayed ticket at montreal-1: %q, want %q", code, wire.CodeWrongEdge)
	}
	// 2. A ticket for montreal-1 signed by anyone but the control plane.
	_, forger, _ := ed25519.GenerateKey(rand.Reader)
	forged, _ := ticket.Sign(forger, ticket.Claims{RoomID: room, ParticipantID: "mallory", EdgeID: "montreal-1", Permissions: ticket.Permissions{Publish: true, Subscribe: true},
		IssuedAt: time.Now().Unix(), ExpiresAt: time.Now().Add(time.Minute).Unix()})
	if code := signalJoinCode(t, montrealSignal, forged); code != wire.CodeInvalidTicket {
		t.Fatalf("forged ticket at montreal-1: %q", code)
	}
	// 3. The Canadian edge claiming the room through the control plane.
	r := clustertestDoEdge(t, m.c.Node(0).URL()+"/internal/v1/rooms/attach", edgeapi.Attach{EdgeID: "montreal-1", RoomID: room, Claim: true})
	if r.Status != 403 {
		t.Fatalf("claim of a pinned room by montreal-1: %d %s", r.Status, r.Body)
	}
	// 3b. Or asking for a seat in it for a guest (which places the edge as
	// a claim does); nor a seat in a room that does not exist, or for an
	// edge nobody knows.
	for _, tc := range []struct {
		seat   edgeapi.Seat
		status int
	}{
		{edgeapi.Seat{EdgeID: "montreal-1", RoomID: room, ParticipantID: "phantom"}, 403},
		{edgeapi.Seat{EdgeID: "paris-1", RoomID: "nope-nope-nope", ParticipantID: "phantom"}, 404},
		{edgeapi.Seat{EdgeID: "nowhere-1", RoomID: room, ParticipantID: "phantom"}, 409},
	} {
		if r := clustertestDoEdge(t, m.c.Node(0).URL()+"/internal/v1/rooms/seat", tc.seat); r.Status != tc.status {
			t.Fatalf("seat %+v: %d %s, want %d", tc.seat, r.Status, r.Body, tc.status)
		}
	}
	if p := m.placement(0, room); p == nil || p.Has("montreal-1") || p.Has("nowhere-1") {
		t.Fatalf("refused seats changed the placement: %+v", p)
	}
	// 4. A cascade leg between an EU edge and Canada, even with a relay
	// ticket the control plane itself signed: both regions must be allowed.
	sec, err := m.c.Node(0).Secrets()
	if err != nil {
		t.Fatal(err)
	}
	home := alice.EdgeID()
	var homeKey []byte
	m.c.Node(0).Node().FSM().Read(func(st *state.Store) {
		if e, ok := st.Edge(home); ok {
			homeKey = e.PublicKey
		}
	})
	mPub, mPriv, _ := ed25519.GenerateKey(rand.Reader)
	relayTok, err := ticket.SignRelay(sec.TicketKey, ticket.RelayClaims{RoomID: room, Epoch: 1 << 40,
		Edges:          []ticket.RelayEdge{{ID: home, Region: m.specs[home].region, Key: homeKey}, {ID: "montreal-1", Region: "ca-east", Key: mPub}},
		AllowedRegions: []string{"eu-west", "eu-central"}, IssuedAt: time.Now().Unix(), ExpiresAt: time.Now().Add(time.Minute).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	if code := cascadeHello(t, m.specURL(home), room, home, "montreal-1", relayTok, mPriv); code != "ticket" {
		t.Fatalf("cascade leg from ca-east into a pinned room: %q, want refused (ticket)", code)
	}
	// 5. TURN on the Canadian edge with credentials the control plane gave
	// alice (valid on every edge): refused, she is not admitted there.
	var jr struct {
		Edges []struct {
			IceServers []turnServer
		}
	}
	clustertest.Do(t, m.c.Node(0).URL(), "POST", "/v2/rooms/"+room+"/join", m.rtcToken("alice"), map[string]any{"participantId": "alice"}).JSON(t, &jr)
	var ts turnServer
	for _, s := range jr.Edges[0].IceServers {
		if s.Username != "" {
			ts = s
		}
	}
	if err := allocate(t, montreal.TURN().UDPAddr().String(), ts.Username, ts.Credential); err == nil {
		t.Fatal("montreal-1 relayed for a participant of an EU-pinned room")
	}
	if montreal.SFU().Room(room) != nil {
		t.Fatal("montreal-1 has the pinned room in its SFU")
	}

	// The audit names EU regions only, and says so.
	var sessions struct{ Data []struct{ ID string } }
	m.c.Do(0, "GET", "/v2/sessions?roomId="+room, m.c.Token(), nil).JSON(t, &sessions)
	if len(sessions.Data) != 1 {
		t.Fatalf("sessions: %+v", sessions)
	}
	var audit struct {
		Compliant  bool
		Violations []string
		Pins       []map[string]any
		Hops       []struct{ Kind, EdgeID, Region, PeerRegion string }
	}
	clustertest.Eventually(t, 10*time.Second, func() string {
		r := m.c.Do(0, "GET", "/v2/sessions/"+sessions.Data[0].ID+"/audit", m.c.Token(), nil)
		audit.Hops = nil
		r.JSON(t, &audit)
		if len(audit.Hops) == 0 {
			return "no hops yet: " + string(r.Body)
		}
		return ""
	})
	if !audit.Compliant || len(audit.Violations) != 0 || len(audit.Pins) != 1 {
		t.Fatalf("audit: %+v", audit)
	}
	for _, h := range audit.Hops {
		for _, region := range []string{h.Region, h.PeerRegion} {
			if region != "" && region != "eu-west" && region != "eu-central" {
				t.Fatalf("audit of an EU-pinned room names %s (%+v)", region, h)
			}
		}
	}
	t.Logf("audit hops: %+v", audit.Hops)
}

// specURL is an edge's HTTP base URL.
func (m *multi) specURL(id string) string {
	return m.edge(id).PublicURL()
}

// signalJoinCode joins with a ticket and returns the refusal code ("" if admitted).
func signalJoinCode(t *testing.T, url, tok string) string {
	t.Helper()
	ctx := ctxFor(t)
	c, err := signaltest.Dial(ctx, signaltest.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _, err = c.Join(ctx, tok, "x")
	if err == nil {
		return ""
	}
	if pe, ok := err.(*signaltest.ProtocolError); ok {
		return pe.Code
	}
	t.Fatalf("join: %v", err)
	return ""
}

// cascadeHello opens a cascade leg to an edge as edge `from` and returns
// the refusal code ("" if welcomed).
func cascadeHello(t *testing.T, base, room, to, from, relayTicket string, key ed25519.PrivateKey) string {
	t.Helper()
	ws, _, err := fws.DefaultDialer.Dial("ws://"+strings.TrimPrefix(base, "http://")+edgeapi.CascadePath, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	var env wire.Envelope
	if err := ws.ReadJSON(&env); err != nil || env.Type != edgeapi.CascadeChallenge {
		t.Fatalf("challenge: %v %+v", err, env)
	}
	var ch edgeapi.CascadeChallengeMsg
	_ = json.Unmarshal(env.Data, &ch)
	data, _ := json.Marshal(edgeapi.CascadeHelloMsg{Ticket: relayTicket, RoomID: room, EdgeID: from, Nonce: "n",
		Proof: ed25519.Sign(key, ticket.ProofMessage(room, from, to, ch.Nonce))})
	if err := ws.WriteJSON(wire.Envelope{Type: edgeapi.CascadeHello, Data: data}); err != nil {
		t.Fatal(err)
	}
	if err := ws.ReadJSON(&env); err != nil {
		t.Fatalf("no answer: %v", err)
	}
	if env.Type == edgeapi.CascadeWelcome {
		return ""
	}
	var e wire.Error
	_ = json.Unmarshal(env.Data, &e)
	return e.Code
}

// clustertestDoEdge POSTs as an edge (edge token).
func clustertestDoEdge(t *testing.T, url string, body any) clustertest.Response {
	t.Helper()
	return clustertest.Do(t, "", "POST", url, "Bearer "+edgeToken, body)
}
