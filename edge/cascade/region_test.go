package cascade_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"

	"github.com/meridian-video/meridian/edge/signal/signaltest"
	"github.com/meridian-video/meridian/shared/edgeapi"
	wire "github.com/meridian-video/meridian/shared/signal"
	"github.com/meridian-video/meridian/shared/ticket"
)

// willingUpstream plays an upstream edge that accepts any leg: it sends a
// challenge and records the room of every hello it gets. A leg refused by
// the downstream edge itself never reaches it.
type willingUpstream struct {
	srv   *httptest.Server
	mu    sync.Mutex
	rooms []string
}

func newWillingUpstream(t *testing.T) *willingUpstream {
	u := &willingUpstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&fws.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		ch, _ := json.Marshal(edgeapi.CascadeChallengeMsg{Nonce: "n"})
		if c.WriteJSON(wire.Envelope{Type: edgeapi.CascadeChallenge, Data: ch}) != nil {
			return
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var env wire.Envelope
		if c.ReadJSON(&env) != nil || env.Type != edgeapi.CascadeHello {
			return
		}
		var h edgeapi.CascadeHelloMsg
		if json.Unmarshal(env.Data, &h) == nil {
			u.mu.Lock()
			u.rooms = append(u.rooms, h.RoomID)
			u.mu.Unlock()
		}
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *willingUpstream) heard(room string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Contains(u.rooms, room)
}

// TestCascadeDownstreamRefusesDisallowedRegions: the pulling edge checks
// its own relay ticket before it dials: a room whose allowed regions
// exclude the upstream edge's region, or its own, gets no leg even when
// the upstream edge would accept one (sovereignty is enforced by both ends).
func TestCascadeDownstreamRefusesDisallowedRegions(t *testing.T) {
	ctl := newControl(t)
	d := startEdge(t, ctl, "paris-1", "eu-west")
	up := newWillingUpstream(t)
	uPub, _, _ := ed25519.GenerateKey(rand.Reader)
	u := ticket.RelayEdge{ID: "ashburn-1", Region: "us-east", Key: uPub}
	link := func(room string, allowed []string) {
		now := time.Now()
		tok, err := ticket.SignRelay(ctl.priv, ticket.RelayClaims{RoomID: room, Epoch: 1, Edges: []ticket.RelayEdge{d.relayEdge(), u},
			AllowedRegions: allowed, IssuedAt: now.Unix(), ExpiresAt: now.Add(5 * time.Minute).Unix()})
		if err != nil {
			t.Fatal(err)
		}
		d.casc.SetPeers(edgeapi.RoomPeers{RoomID: room, Epoch: 1, Member: true, Peers: []edgeapi.Peer{{EdgeID: u.ID, Region: u.Region, URL: up.srv.URL, RelayTicket: tok}}})
		ctl.join(t, d, room, "p-"+room, all) // a subscriber here: the edge wants the leg
	}
	link("r-far", []string{"eu-west"})  // the upstream edge's region is not allowed
	link("r-self", []string{"us-east"}) // this edge's own region is not allowed
	link("r-ok", []string{"eu-west", "us-east"})

	// The allowed room's leg reaches the upstream edge: it is reachable
	// and the setup is right.
	signaltest.Eventually(t, 10*time.Second, func() string {
		if !up.heard("r-ok") {
			return "the allowed room's leg never reached the upstream edge"
		}
		return ""
	})
	// The others were refused by the downstream edge itself, before dialling.
	lastErr := func(room string) string {
		for _, li := range d.casc.Legs() {
			if li.RoomID == room && li.Direction == "in" {
				return li.LastError
			}
		}
		return ""
	}
	signaltest.Eventually(t, 10*time.Second, func() string {
		for _, room := range []string{"r-far", "r-self"} {
			if e := lastErr(room); !strings.Contains(e, ticket.ErrRegionRefused.Error()) {
				return signaltest.Reasonf("%s: last error %q, want a region refusal", room, e)
			}
		}
		return ""
	})
	for _, room := range []string{"r-far", "r-self"} {
		if up.heard(room) {
			t.Fatalf("%s: the downstream edge dialled an edge its ticket does not allow", room)
		}
	}
}
