package chaos

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"golang.org/x/time/rate"

	"github.com/meridian-video/meridian/control/webhooks"
	"github.com/meridian-video/meridian/shared/edgeapi"
	"github.com/meridian-video/meridian/shared/wait"
	"github.com/meridian-video/meridian/test/procs"
)

// ---- the receiver -------------------------------------------------------------

// receipt is one delivery attempt as the receiver saw it.
type receipt struct {
	N      int // arrival order
	At     time.Time
	ID     string // webhook-id
	Body   []byte
	Status int   // what the receiver answered
	SigErr error // Standard Webhooks verification
	RSAErr error // videosdk-signature verification
	Type   string
	RoomID string // data.meetingId
	PID    string // data.participantId
}

// receiver is the webhook endpoint: a real HTTP server on loopback that
// verifies every attempt and answers 503 to a few of them.
type receiver struct {
	url  string
	srv  *http.Server
	fail float64 // share of attempts answered 503

	mu       sync.Mutex
	rng      *rand.Rand
	wh       *standardwebhooks.Webhook
	pub      *rsa.PublicKey
	receipts []receipt
	acked    map[string]bool // webhook-ids answered 2xx
}

func newReceiver(t *testing.T, fail float64) *receiver {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{url: "http://" + ln.Addr().String() + "/hook", fail: fail, rng: rand.New(rand.NewPCG(3, uint64(time.Now().UnixNano()))),
		acked: map[string]bool{}}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	t.Cleanup(func() { _ = r.srv.Close() })
	return r
}

// keys sets the verification keys (the API key's whsec_ secret and the
// deployment's RSA public key).
func (r *receiver) keys(t *testing.T, secret, rsaPEM string) {
	if sabotage("sig") {
		secret = "whsec_" + strings.Repeat("QUJD", 8) // someone else's secret
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatalf("signing secret %q: %v", secret, err)
	}
	pub, err := webhooks.ParsePublicKeyPEM(rsaPEM)
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	r.wh, r.pub = wh, pub
	r.mu.Unlock()
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(400)
		return
	}
	var env struct {
		WebhookType string `json:"webhookType"`
		Data        struct {
			MeetingID     string `json:"meetingId"`
			ParticipantID string `json:"participantId"`
		} `json:"data"`
	}
	_ = json.Unmarshal(body, &env)
	r.mu.Lock()
	defer r.mu.Unlock()
	rc := receipt{N: len(r.receipts), At: time.Now(), ID: req.Header.Get("webhook-id"), Body: body, Status: 200,
		Type: env.WebhookType, RoomID: env.Data.MeetingID, PID: env.Data.ParticipantID}
	if r.wh == nil {
		rc.SigErr = fmt.Errorf("no secret yet")
	} else {
		rc.SigErr = r.wh.Verify(body, req.Header)
		rc.RSAErr = webhooks.VerifyVideoSDK(r.pub, body, req.Header.Get("videosdk-signature"))
	}
	if r.fail > 0 && r.rng.Float64() < r.fail {
		rc.Status = 503
	}
	if rc.Status/100 == 2 {
		r.acked[rc.ID] = true
	}
	r.receipts = append(r.receipts, rc)
	w.WriteHeader(rc.Status)
}

func (r *receiver) snapshot() ([]receipt, map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	acked := make(map[string]bool, len(r.acked))
	for k := range r.acked {
		acked[k] = true
	}
	return append([]receipt(nil), r.receipts...), acked
}

// ---- the checks -------------------------------------------------------------------

// delivery is one entry of GET /v2/webhooks/deliveries.
type delivery struct {
	ID        string `json:"id"`
	EventType string `json:"eventType"`
	RoomID    string `json:"roomId"`
	Status    string `json:"status"`
	Attempts  int    `json:"attempts"`
}

// event is what an expected or received webhook says.
type event struct{ Type, PID string }

func (e event) String() string {
	if e.PID == "" {
		return e.Type
	}
	return e.Type + "(" + e.PID + ")"
}

// whReport is the outcome of checking the webhooks of some rooms.
type whReport struct {
	Deliveries, Receipts, Dups, Refused int // Refused: attempts the receiver answered 503
	Problems                            []string
}

func (w *whReport) bad(format string, args ...any) {
	if len(w.Problems) < 200 {
		w.Problems = append(w.Problems, fmt.Sprintf(format, args...))
	}
}

// checkWebhooks checks the receipts against the delivery log of each room
// (in enqueue order) and, where given, against the events the room must
// have produced.
func checkWebhooks(receipts []receipt, logs map[string][]delivery, expected map[string][]event) whReport {
	var rep whReport
	byID := map[string][]receipt{}
	for _, rc := range receipts {
		byID[rc.ID] = append(byID[rc.ID], rc)
		rep.Receipts++
		if rc.Status/100 != 2 {
			rep.Refused++
		}
		if rc.SigErr != nil {
			rep.bad("webhook %s (%s): Standard Webhooks signature does not verify: %v", rc.ID, rc.Type, rc.SigErr)
		}
		if rc.RSAErr != nil {
			rep.bad("webhook %s (%s): videosdk-signature does not verify: %v", rc.ID, rc.Type, rc.RSAErr)
		}
	}
	known := map[string]bool{}
	rooms := make([]string, 0, len(logs))
	for room := range logs {
		rooms = append(rooms, room)
	}
	sort.Strings(rooms)
	for _, room := range rooms {
		log := logs[room]
		pos := map[string]int{}
		var got []event
		for i, d := range log {
			rep.Deliveries++
			known[d.ID] = true
			pos[d.ID] = i
			rs := byID[d.ID]
			acks := 0
			for _, rc := range rs {
				if string(rc.Body) != string(rs[0].Body) {
					rep.bad("webhook %s: attempts carried different bodies", d.ID)
				}
				if rc.Status/100 == 2 {
					acks++
				}
			}
			if acks == 0 {
				rep.bad("room %s: event %d/%d %s (%s) never received (%d attempts seen, log says %s after %d attempts)", room, i+1, len(log), d.ID, d.EventType, len(rs), d.Status, d.Attempts)
				continue
			}
			rep.Dups += acks - 1
			if d.Status != "delivered" {
				rep.bad("room %s: event %s was received but the delivery log says %s", room, d.ID, d.Status)
			}
			if rs[0].Type != d.EventType || rs[0].RoomID != room {
				rep.bad("webhook %s: body says %s in room %s, the log %s in room %s", d.ID, rs[0].Type, rs[0].RoomID, d.EventType, room)
			}
			got = append(got, event{rs[0].Type, rs[0].PID})
		}
		// In order: an event is sent only once every earlier event of
		// its room was acknowledged.
		ackedUpTo := -1 // every event at or below is acknowledged
		ackedSet := map[int]bool{}
		var mine []receipt
		for _, rc := range receipts {
			if _, ok := pos[rc.ID]; ok {
				mine = append(mine, rc)
			}
		}
		if sabotage("order") && room == rooms[0] {
			for i, j := 0, len(mine)-1; i < j; i, j = i+1, j-1 {
				mine[i], mine[j] = mine[j], mine[i]
			}
		}
		for _, rc := range mine {
			j := pos[rc.ID]
			if j > ackedUpTo+1 {
				rep.bad("room %s: event %d (%s, %s) was sent before event %d (%s) was acknowledged", room, j+1, rc.ID, rc.Type, ackedUpTo+2, log[ackedUpTo+1].ID)
			}
			if rc.Status/100 == 2 {
				ackedSet[j] = true
				for ackedSet[ackedUpTo+1] {
					ackedUpTo++
				}
			}
		}
		if want, ok := expected[room]; ok {
			if !sameEvents(got, want) {
				rep.bad("room %s: the webhooks say\n    %v\n  the reports imply\n    %v", room, short(got), short(want))
			}
		}
	}
	for _, rc := range receipts {
		if !known[rc.ID] {
			rep.bad("webhook %s (%s, room %s) is in no room's delivery log", rc.ID, rc.Type, rc.RoomID)
			known[rc.ID] = true
		}
	}
	return rep
}

func sameEvents(a, b []event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func short(es []event) string {
	var parts []string
	for i, e := range es {
		if i == 12 {
			parts = append(parts, fmt.Sprintf("... (%d in all)", len(es)))
			break
		}
		parts = append(parts, e.String())
	}
	return strings.Join(parts, " ")
}

// deliveryLog reads a room's delivery log through a node, oldest first.
func deliveryLog(t *testing.T, a *api, bases []string, roomID string) []delivery {
	var all []delivery
	for page := 1; ; page++ {
		var l struct {
			PageInfo struct {
				LastPage int `json:"lastPage"`
			} `json:"pageInfo"`
			Data []delivery `json:"data"`
		}
		a.mustJSON(t, bases, "GET", fmt.Sprintf("/v2/webhooks/deliveries?roomId=%s&perPage=1000&page=%d&consistent=true", url.QueryEscape(roomID), page), nil, &l, 30*time.Second)
		all = append(all, l.Data...)
		if page >= l.PageInfo.LastPage {
			break
		}
	}
	for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
		all[i], all[j] = all[j], all[i] // the log lists newest first
	}
	return all
}

// ---- the world -------------------------------------------------------------------

// whWorld is a cluster whose rooms send webhooks to the receiver.
type whWorld struct {
	cl  *procs.Cluster
	key procs.APIKey
	api *api
	rcv *receiver
}

func startWebhookWorld(t *testing.T, fail float64) *whWorld {
	rcv := newReceiver(t, fail)
	args := []string{"--webhook-allow-http", "--webhook-allow-private", "127.0.0.1/32"}
	for _, f := range []string{"webhook-allow-http", "webhook-allow-private"} {
		if !procs.HasFlag(t, "control", f) {
			t.Fatalf("meridian control has no --%s", f)
		}
	}
	cl := procs.StartCluster(t, procs.ClusterOptions{Nodes: 3, Args: args})
	key := cl.NewAPIKey(t, cl.Nodes[0])
	w := &whWorld{cl: cl, key: key, api: newAPI(key.Crawler(t)), rcv: rcv}
	waitKey(t, w.api, cl)
	var sec struct {
		Secret string `json:"secret"`
	}
	w.api.mustJSON(t, cl.URLs(), "GET", "/v2/webhooks/signing-secret", nil, &sec, 20*time.Second)
	var pk struct {
		PublicKey string `json:"publicKey"`
	}
	w.api.mustJSON(t, cl.URLs(), "GET", "/v2/public/rsa-public-key", nil, &pk, 20*time.Second)
	rcv.keys(t, sec.Secret, pk.PublicKey)
	return w
}

// room creates a room whose webhook is the receiver.
func (w *whWorld) room(t *testing.T, cid string) string {
	var v roomView
	w.api.mustJSON(t, w.cl.URLs(), "POST", "/v2/rooms", map[string]any{"customRoomId": cid, "webhook": map[string]any{"endPoint": w.rcv.url}}, &v, 30*time.Second)
	return v.RoomID
}

// faultLeader kills (or pauses) the leader, waits down, and brings it
// back; it returns what it did.
func faultLeader(t *testing.T, cl *procs.Cluster, pause bool, down time.Duration) string {
	leader := agreedLeader(t, cl, 30*time.Second)
	if pause {
		leader.Pause(t)
		time.Sleep(down)
		leader.Resume(t)
		return fmt.Sprintf("leader %s paused (SIGSTOP) for %v", leader.ID, ms(down))
	}
	leader.Kill(t)
	time.Sleep(down)
	start := time.Now()
	leader.Restart(t)
	leader.WaitHealthy(t, 30*time.Second)
	return fmt.Sprintf("leader %s killed (SIGKILL) for %v, healthy %v after the restart", leader.ID, ms(down), ms(time.Since(start)))
}

// waitDelivered waits until the receiver acknowledged every delivery the
// rooms' logs hold and none is pending.
func (w *whWorld) waitDelivered(t *testing.T, rooms []string, want int, timeout time.Duration) {
	wait.Until(t, timeout, labelled("every webhook delivered", func() string {
		_, acked := w.rcv.snapshot()
		if want > 0 && len(acked) < want {
			return fmt.Sprintf("receiver acknowledged %d of %d events", len(acked), want)
		}
		for _, room := range rooms {
			for _, d := range deliveryLog(t, w.api, w.cl.URLs(), room) {
				if d.Status == "pending" || !acked[d.ID] {
					return fmt.Sprintf("room %s: %s (%s) %s, received %v", room, d.ID, d.EventType, d.Status, acked[d.ID])
				}
			}
		}
		return ""
	}))
}

// ---- the test ---------------------------------------------------------------------

// TestChaosWebhooks: see the package documentation.
func TestChaosWebhooks(t *testing.T) {
	t.Parallel()
	began := time.Now()
	var (
		nRooms  = 8
		perRoom = 100 // webhook events (4 per join/leave cycle)
		evRate  = 45.0
		period  = 3 * time.Second
		minHits = 3
		fail    = 0.01
	)
	if long() {
		nRooms, perRoom, evRate, period, minHits = 20, 500, 18, 30*time.Second, 12
	}
	w := startWebhookWorld(t, fail)
	var rooms []string
	for i := range nRooms {
		rooms = append(rooms, w.room(t, fmt.Sprintf("wh-%02d", i)))
	}
	t.Logf("cluster, receiver and %d rooms ready in %v; target %d webhook events at %.0f/s, leader fault every %v",
		nRooms, ms(time.Since(began)), nRooms*perRoom, evRate, period)

	// The edge reporter: join/leave cycles per room, each batch retried
	// (same event ids) until a node acknowledges it.
	lim := rate.NewLimiter(rate.Limit(evRate), 40)
	edgeAPI := newAPI("Bearer " + w.cl.EdgeToken)
	var mx mix
	expected := make([]map[string][]event, nRooms)
	var sent atomic.Int64
	var gen sync.WaitGroup
	for i, room := range rooms {
		expected[i] = map[string][]event{}
		gen.Add(1)
		go func() {
			defer gen.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 99))
			const batch = 5 // cycles per report
			for k := 0; k < perRoom/4; k += batch {
				n := min(batch, perRoom/4-k)
				_ = lim.WaitN(context.Background(), 4*n)
				var evs []edgeapi.Event
				var exp []event
				now := time.Now().UTC()
				for j := k; j < k+n; j++ {
					pid := fmt.Sprintf("p%d", j)
					at := now.Add(time.Duration(2*(j-k)) * time.Millisecond)
					evs = append(evs,
						edgeapi.Event{ID: fmt.Sprintf("%s-%d-join", room, j), Kind: edgeapi.EventParticipantJoined, RoomID: room, ParticipantID: pid, Name: pid, At: at},
						edgeapi.Event{ID: fmt.Sprintf("%s-%d-left", room, j), Kind: edgeapi.EventParticipantLeft, RoomID: room, ParticipantID: pid, At: at.Add(time.Millisecond)})
					exp = append(exp, event{"session-started", ""}, event{"participant-joined", pid}, event{"participant-left", pid}, event{"session-ended", ""})
				}
				body := edgeapi.EventBatch{EdgeID: "chaos-reporter", Events: evs}
				for attempt := 0; ; attempt++ {
					c := w.cl.Nodes[rng.IntN(len(w.cl.Nodes))]
					a := edgeAPI.do(c.URL, "POST", "/internal/v1/edges/events", body, nil, 10*time.Second)
					mx.add("edge-events", a, "on "+c.ID)
					if a.Status == 200 {
						break
					}
					if a.definite() {
						t.Errorf("edge events refused by %s: %d %s", c.ID, a.Status, a.Body)
						return
					}
					time.Sleep(time.Duration(100+rng.IntN(200)) * time.Millisecond)
				}
				expected[i][room] = append(expected[i][room], exp...)
				sent.Add(int64(4 * n))
			}
		}()
	}
	genDone := make(chan struct{})
	go func() { gen.Wait(); close(genDone) }()

	// The leader, killed (every third time paused) every period.
	var faults []string
	for hits := 0; ; hits++ {
		select {
		case <-genDone:
		case <-time.After(period):
		}
		select {
		case <-genDone:
			if hits >= minHits {
				goto generated
			}
		default:
		}
		what := faultLeader(t, w.cl, hits%3 == 1, map[bool]time.Duration{false: 2 * time.Second, true: 3 * time.Second}[hits%3 == 1])
		faults = append(faults, fmt.Sprintf("%v: %s (%d events reported so far)", ms(time.Since(began)), what, sent.Load()))
		t.Log(faults[len(faults)-1])
	}
generated:
	genTook := time.Since(began)
	agreedLeader(t, w.cl, 30*time.Second)
	want := nRooms * perRoom
	w.waitDelivered(t, rooms, want, map[bool]time.Duration{false: 90 * time.Second, true: 10 * time.Minute}[long()])
	deliveredAt := time.Since(began)

	exp := map[string][]event{}
	for i := range expected {
		for k, v := range expected[i] {
			exp[k] = v
		}
	}
	if sabotage("spurious") {
		exp[rooms[0]] = exp[rooms[0]][1:]
	}
	logs := map[string][]delivery{}
	for _, room := range rooms {
		logs[room] = deliveryLog(t, w.api, w.cl.URLs(), room)
	}
	receipts, _ := w.rcv.snapshot()
	if sabotage("missing") {
		receipts = dropReceipts(receipts, logs[rooms[0]][len(logs[rooms[0]])/2].ID)
	}
	rep := checkWebhooks(receipts, logs, exp)
	t.Logf("webhooks: %d events in %d rooms (%d expected), %d attempts received (%d answered 503 on purpose, %d duplicate deliveries after a 2xx), "+
		"%d leader faults; reported by %v, all delivered by %v, test %v",
		rep.Deliveries, len(rooms), want, rep.Receipts, rep.Refused, rep.Dups, len(faults), ms(genTook), ms(deliveredAt), ms(time.Since(began)))
	t.Logf("edge report answers (POST /internal/v1/edges/events, retried until acknowledged):\n%s", mx.String())
	if rep.Deliveries != want {
		t.Errorf("the delivery logs hold %d events, the reports imply %d", rep.Deliveries, want)
	}
	for _, p := range rep.Problems {
		t.Error(p)
	}
	if len(rep.Problems) > 0 {
		t.Logf("faults:\n  %s", strings.Join(faults, "\n  "))
	}
	mx.check(t)
}

func dropReceipts(rs []receipt, id string) []receipt {
	var out []receipt
	for _, r := range rs {
		if r.ID != id {
			out = append(out, r)
		}
	}
	return out
}
