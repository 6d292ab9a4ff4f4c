package e2e

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/placement"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/control/webhooks"
	"github.com/meridian-video/meridian/control/webhooks/raftoutbox"
	"github.com/meridian-video/meridian/shared/edgeapi"
)

type received struct {
	id, typ   string
	body      []byte
	header    http.Header
	attemptNo int
}

// receiver is a real HTTP endpoint that can be told to fail.
type receiver struct {
	srv    *httptest.Server
	accept atomic.Bool
	mu     sync.Mutex
	got    []received
	tries  map[string]int // per webhook-id
	paths  map[string]int // tries per request path (one endpoint per room here)
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{tries: map[string]int{}, paths: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var env struct{ WebhookType string }
		_ = json.Unmarshal(body, &env)
		r.mu.Lock()
		id := req.Header.Get("webhook-id")
		r.tries[id]++
		r.paths[req.URL.Path]++
		ok := r.accept.Load()
		if ok {
			r.got = append(r.got, received{id: id, typ: env.WebhookType, body: body, header: req.Header.Clone(), attemptNo: r.tries[id]})
		}
		r.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) deliveries() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func webhookCluster(t *testing.T, n int) *clustertest.Cluster {
	return clustertest.New(t, n, clustertest.Options{Configure: func(i int, cfg *server.Config) {
		pc := placement.DefaultConfig()
		pc.EdgeToken = edgeToken
		pc.HeartbeatEvery = 100 * time.Millisecond
		pc.DownAfter = 5 * time.Second
		wc := webhooks.DefaultConfig()
		wc.AllowHTTP = true
		wc.AllowedNets = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		wc.MinBackoff, wc.MaxBackoff = 50*time.Millisecond, 200*time.Millisecond
		wc.PollInterval, wc.MinScanInterval = 100*time.Millisecond, 10*time.Millisecond
		cfg.Plugins = append(cfg.Plugins, placement.Plugin(pc), raftoutbox.Plugin(wc))
	}})
}

// TestWebhooksSurviveLeaderLoss: events queued while the receiver is down are
// delivered after the leader is killed, in order per room, signed both ways,
// with the same webhook-id on every retry.
func TestWebhooksSurviveLeaderLoss(t *testing.T) {
	c := webhookCluster(t, 3)
	recv := newReceiver(t)
	edge := startAgent(t, c, "edge-w", "local")

	var room struct{ RoomID string }
	r := c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{"webhook": map[string]any{"endPoint": recv.srv.URL + "/hook", "events": []string{"*"}}})
	r.JSON(t, &room)
	if r.Status != 200 {
		t.Fatalf("create room: %d %s", r.Status, r.Body)
	}
	var other struct{ RoomID string }
	c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{"webhook": map[string]any{"endPoint": recv.srv.URL + "/other", "events": []string{"session-*"}}}).JSON(t, &other)

	for _, p := range []string{"ann", "ben", "cat"} {
		edge.ParticipantJoined(edgeapi.Event{RoomID: room.RoomID, ParticipantID: p, Name: strings.ToUpper(p) + " & co <x>"})
	}
	edge.ParticipantJoined(edgeapi.Event{RoomID: other.RoomID, ParticipantID: "zed", Name: "Zed"})
	for _, p := range []string{"ann", "ben", "cat"} {
		edge.ParticipantLeft(edgeapi.Event{RoomID: room.RoomID, ParticipantID: p})
	}
	edge.ParticipantLeft(edgeapi.Event{RoomID: other.RoomID, ParticipantID: "zed"})

	want := []string{"session-started", "participant-joined", "participant-joined", "participant-joined",
		"participant-left", "participant-left", "participant-left", "session-ended"}
	// Wait until the room's endpoint has been tried (its deliveries are
	// pending and failing); a try of the other room's endpoint says nothing
	// about this room's head event.
	clustertest.Eventually(t, 10*time.Second, func() string {
		recv.mu.Lock()
		defer recv.mu.Unlock()
		if recv.paths["/hook"] == 0 {
			return "no delivery attempt to the room's endpoint yet"
		}
		return ""
	})
	c.KillLeader()
	c.Leader()
	recv.accept.Store(true)

	clustertest.Eventually(t, 20*time.Second, func() string {
		n := 0
		for _, d := range recv.deliveries() {
			if strings.Contains(string(d.body), room.RoomID) {
				n++
			}
		}
		if n < len(want) {
			return fmt.Sprintf("%d of %d events for the room delivered", n, len(want))
		}
		return ""
	})

	// Fetch the verification material through the API, as a receiver would.
	alive := -1
	for i, n := range c.Nodes() {
		if n != nil {
			alive = i
		}
	}
	var sec struct{ Secret string }
	c.Do(alive, "GET", "/v2/webhooks/signing-secret", c.Token(), nil).JSON(t, &sec)
	var pk struct{ PublicKey string }
	c.Do(alive, "GET", "/v2/public/rsa-public-key", "", nil).JSON(t, &pk)
	block, _ := pem.Decode([]byte(pk.PublicKey))
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	wh, err := standardwebhooks.NewWebhook(sec.Secret)
	if err != nil {
		t.Fatal(err)
	}

	var got []string
	seen := map[string]bool{}
	for _, d := range recv.deliveries() {
		if strings.Contains(string(d.body), other.RoomID) {
			if d.typ != "session-started" && d.typ != "session-ended" {
				t.Errorf("room filter session-* let %s through", d.typ)
			}
			continue
		}
		if seen[d.id] {
			continue // an at-least-once duplicate: same id, receivers dedupe
		}
		seen[d.id] = true
		got = append(got, d.typ)
		if err := wh.Verify(d.body, d.header); err != nil {
			t.Errorf("standard webhooks signature of %s: %v", d.id, err)
		}
		sig, _ := base64.StdEncoding.DecodeString(d.header.Get("videosdk-signature"))
		sum := sha256.Sum256(d.body)
		if err := rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), crypto.SHA256, sum[:], sig); err != nil {
			t.Errorf("videosdk-signature of %s: %v", d.id, err)
		}
		// The room's head event was retried while the receiver failed; the
		// rest waited behind it (per-room order), so they succeed first time.
		if d.typ == "session-started" && d.attemptNo < 2 {
			t.Errorf("%s was delivered on its first try although the receiver was failing", d.id)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("delivered out of order or lost:\n got %v\nwant %v", got, want)
	}
	// Payload bytes are JSON.stringify-compatible: & < > are not escaped.
	for _, d := range recv.deliveries() {
		if d.typ == "participant-joined" && strings.Contains(string(d.body), `\u0026`) {
			t.Fatalf("body is HTML-escaped: %s", d.body)
		}
	}

	// The delivery log shows the retries; a redelivery reuses the id.
	var log struct {
		Data []struct {
			ID, Status, EventType string
			Attempts              int
		}
	}
	// The receiver may see a delivery an instant before its outcome is
	// committed, so poll (with a consistent read through the leader).
	clustertest.Eventually(t, 10*time.Second, func() string {
		c.Do(alive, "GET", "/v2/webhooks/deliveries?roomId="+room.RoomID+"&perPage=100&consistent=true", c.Token(), nil).JSON(t, &log)
		if len(log.Data) != len(want) {
			return fmt.Sprintf("delivery log has %d entries", len(log.Data))
		}
		// The log counts attempts whose outcome was committed; an attempt
		// by the killed leader may have died with it (the receiver-side
		// count above proves the retry happened).
		for _, e := range log.Data {
			if e.Status != "delivered" || e.Attempts < 1 {
				return fmt.Sprintf("log entry %+v", e)
			}
		}
		return ""
	})
	target := log.Data[0].ID
	if r := c.Do(alive, "POST", "/v2/webhooks/deliveries/"+target+"/redeliver", c.Token(), nil); r.Status != 200 {
		t.Fatalf("redeliver: %d %s", r.Status, r.Body)
	}
	clustertest.Eventually(t, 10*time.Second, func() string {
		n := 0
		for _, d := range recv.deliveries() {
			if d.id == target {
				n++
			}
		}
		if n < 2 {
			return "redelivery not received"
		}
		return ""
	})
}

// TestWebhookEndpointPolicy: plain-http endpoints are refused unless allowed.
func TestWebhookEndpointPolicy(t *testing.T) {
	c := clustertest.New(t, 1, clustertest.Options{Configure: func(i int, cfg *server.Config) {
		cfg.Plugins = append(cfg.Plugins, raftoutbox.Plugin(webhooks.DefaultConfig()))
	}})
	for _, u := range []string{"http://hooks.example.com/x", "https://127.0.0.1/x", "https://10.1.2.3/x"} {
		r := c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{"webhook": map[string]any{"endPoint": u}})
		if r.Status != 400 || !strings.Contains(string(r.Body), "webhook.endPoint") {
			t.Fatalf("%s: %d %s", u, r.Status, r.Body)
		}
	}
	if r := c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{"webhook": map[string]any{"endPoint": "https://hooks.example.com/x"}}); r.Status != 200 {
		t.Fatalf("https endpoint refused: %d %s", r.Status, r.Body)
	}
}
