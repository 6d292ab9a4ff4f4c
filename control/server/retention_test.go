package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/control/webhooks"
	"github.com/meridian-video/meridian/control/webhooks/raftoutbox"
)

// clock is the leader's wall clock, moved by the test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// hookCounter counts webhook requests per path; "/down" always answers 503.
type hookCounter struct {
	mu  sync.Mutex
	got map[string]int
	srv *httptest.Server
}

func newHookCounter(t *testing.T) *hookCounter {
	h := &hookCounter{got: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.got[r.URL.Path]++
		h.mu.Unlock()
		if r.URL.Path == "/down" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookCounter) count(path string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.got[path]
}

// TestRetentionRemovesHistoryThroughRaft: on a 3-node cluster with a 30-day
// retention, the leader's loop removes ended sessions (timelines, stats)
// and delivered webhooks once the leader's clock passes 30 days, in small
// batches, on every node alike; the API then answers 404 with reason
// "retention" for them (and a plain 404 for ids that never existed), lists
// and totals stay right, the ongoing session and its still-pending deliveries
// stay, and no webhook is sent again.
func TestRetentionRemovesHistoryThroughRaft(t *testing.T) {
	clk := &clock{t: time.Now().UTC().Truncate(time.Millisecond)}
	hooks := newHookCounter(t)
	const keep = 30 * 24 * time.Hour
	c := clustertest.New(t, 3, clustertest.Options{Configure: func(i int, cfg *server.Config) {
		cfg.Now = clk.Now
		cfg.Retention = server.RetentionConfig{Keep: keep, Every: 20 * time.Millisecond, Batch: 3}
		wc := webhooks.DefaultConfig()
		wc.Now = clk.Now // DefaultConfig brings time.Now; due times follow the test's clock
		wc.AllowHTTP = true
		wc.AllowedNets = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		wc.MinBackoff, wc.MaxBackoff = 20*time.Millisecond, 100*time.Millisecond
		wc.PollInterval, wc.MinScanInterval = 50*time.Millisecond, 10*time.Millisecond
		wc.MaxAge = 10 * keep // the failing endpoint's delivery stays pending
		cfg.Plugins = append(cfg.Plugins, raftoutbox.Plugin(wc))
	}})
	tok := func() string { return c.Token(func(o *auth.MintOptions) { o.Now = clk.Now() }) }
	leader := c.Leader()
	createRoom := func(path string) string {
		var room struct{ RoomID string }
		r := c.Do(leader, "POST", "/v2/rooms", tok(), map[string]any{"webhook": map[string]any{"endPoint": hooks.srv.URL + path}})
		if r.Status != 200 {
			t.Fatalf("create room: %d %s", r.Status, r.Body)
		}
		r.JSON(t, &room)
		return room.RoomID
	}
	up, down := createRoom("/up"), createRoom("/down")
	n := 0
	id := func() string { n++; return fmt.Sprintf("%024x", 1<<60+n) }
	apply := func(ct state.CommandType, body any) {
		t.Helper()
		if _, _, err := c.Node(leader).Node().Apply(context.Background(), ct, body); err != nil {
			t.Fatal(err)
		}
	}
	session := func(room string, end bool) string {
		sid, at := id(), clk.Now()
		apply(state.CmdParticipantJoin, state.ParticipantJoin{EventID: id(), RoomID: room, ParticipantID: "p", Name: "P", EdgeID: "e", At: at, NewSessionID: sid, NewDocID: id(), IDs: []string{id(), id()}})
		apply(state.CmdAppendStats, state.AppendStats{Samples: []state.RoomSample{{RoomID: room, Sample: state.StatsSample{ParticipantID: "p", Time: at}}}})
		if end {
			apply(state.CmdParticipantLeave, state.ParticipantLeave{EventID: id(), RoomID: room, ParticipantID: "p", EdgeID: "e", At: at.Add(time.Minute), IDs: []string{id(), id()}})
		}
		return sid
	}
	var old []string
	for i := 0; i < 5; i++ {
		old = append(old, session(up, true))
	}
	live := session(down, false) // ongoing; its session-started delivery keeps failing
	clk.advance(2 * time.Minute) // the leaves' webhooks are due

	// Every webhook of the ended sessions is delivered (4 per session).
	clustertest.Eventually(t, 20*time.Second, func() string {
		if got := hooks.count("/up"); got != 4*len(old) {
			var b strings.Builder
			c.Node(leader).Node().FSM().Read(func(s *state.Store) {
				ds, _ := s.DeliveriesPage(state.DeliveryFilter{UserID: userID(t, c, leader)}, state.Page{Limit: -1})
				for _, d := range ds {
					fmt.Fprintf(&b, "%s %s %s att=%d next=%s err=%s; ", d.EventType, d.Status, d.URL, d.Attempts, d.NextAttempt, d.LastError)
				}
			})
			return fmt.Sprintf("%d webhooks delivered, want %d: %s", got, 4*len(old), b.String())
		}
		return ""
	})
	// The receiver has them all; their outcomes are committed a moment
	// later. Retention counts from an outcome's time, so the clock moves on
	// only once the leader (whose loop removes them) has applied every one.
	clustertest.Eventually(t, 20*time.Second, func() string {
		var delivered int
		c.Node(leader).Node().FSM().Read(func(s *state.Store) {
			_, delivered = s.DeliveriesPage(state.DeliveryFilter{UserID: userID(t, c, leader), Status: state.DeliveryDelivered}, state.Page{Limit: 0})
		})
		if delivered != 4*len(old) {
			return fmt.Sprintf("the leader has %d deliveries delivered, want %d", delivered, 4*len(old))
		}
		return ""
	})
	var removedDelivery string
	c.Node(leader).Node().FSM().Read(func(s *state.Store) {
		ds := s.SessionDeliveries(old[0])
		removedDelivery = ds[0].ID
	})
	sent := hooks.count("/up")

	clk.advance(keep + time.Hour)
	// On every node: the old sessions and their delivered webhooks are gone
	// (sessions go in the first batches, deliveries after them).
	for i := range c.Nodes() {
		clustertest.Eventually(t, 20*time.Second, func() string {
			var ended, delivered int
			c.Node(i).Node().FSM().Read(func(s *state.Store) {
				_, ended = s.SessionsPage(state.SessionFilter{UserID: userID(t, c, i), Status: "ended"}, state.Page{Limit: 0})
				_, delivered = s.DeliveriesPage(state.DeliveryFilter{UserID: userID(t, c, i), Status: state.DeliveryDelivered}, state.Page{Limit: 0})
			})
			if ended != 0 || delivered != 0 {
				return fmt.Sprintf("node%d still has %d ended sessions and %d delivered webhooks", i, ended, delivered)
			}
			return ""
		})
	}
	for i := range c.Nodes() {
		for _, sid := range []string{old[0], old[4]} {
			r := c.Do(i, "GET", "/v2/sessions/"+sid+"/participants", tok(), nil)
			expectRetention(t, r, "session", sid)
			expectRetention(t, c.Do(i, "GET", "/v2/sessions/"+sid+"/stats", tok(), nil), "session", sid)
		}
		expectRetention(t, c.Do(i, "GET", "/v2/webhooks/deliveries/"+removedDelivery, tok(), nil), "delivery", removedDelivery)
		// Ending a removed session says why it is not there, too.
		expectRetention(t, c.Do(i, "POST", "/v2/sessions/end", tok(), map[string]any{"roomId": up, "sessionId": old[1]}), "session", old[1])
		r := c.Do(i, "GET", "/v2/sessions/"+id(), tok(), nil)
		if r.Status != 404 || strings.Contains(string(r.Body), "retention") {
			t.Fatalf("node%d: an id that never existed: %d %s", i, r.Status, r.Body)
		}
		if r := c.Do(i, "GET", "/v2/sessions/"+live, tok(), nil); r.Status != 200 {
			t.Fatalf("node%d: the ongoing session: %d %s", i, r.Status, r.Body)
		}
		var list struct {
			PageInfo struct{ Total int }
			Data     []struct{ ID, Status string }
		}
		c.Do(i, "GET", "/v2/sessions", tok(), nil).JSON(t, &list)
		if list.PageInfo.Total != 1 || len(list.Data) != 1 || list.Data[0].ID != live {
			t.Fatalf("node%d: sessions after retention: %+v", i, list)
		}
		var dels struct {
			PageInfo struct{ Total int }
			Data     []struct{ Status, RoomID string }
		}
		c.Do(i, "GET", "/v2/webhooks/deliveries", tok(), nil).JSON(t, &dels)
		// The ongoing session's participant-joined and session-started
		// deliveries to the failing endpoint stay, still pending.
		if dels.PageInfo.Total != 2 || len(dels.Data) != 2 {
			t.Fatalf("node%d: deliveries after retention (only the two pending ones should stay): %+v", i, dels)
		}
		for _, d := range dels.Data {
			if d.Status != state.DeliveryPending || d.RoomID != down {
				t.Fatalf("node%d: deliveries after retention (only the two pending ones should stay): %+v", i, dels)
			}
		}
	}
	if got := hooks.count("/up"); got != sent {
		t.Fatalf("retention re-sent webhooks: %d, then %d", sent, got)
	}
}

func userID(t *testing.T, c *clustertest.Cluster, i int) string {
	var u string
	c.Node(i).Node().FSM().Read(func(s *state.Store) {
		if k, ok := s.APIKey(c.APIKey); ok {
			u = k.UserID
		}
	})
	if u == "" {
		t.Fatal("no API key")
	}
	return u
}

func expectRetention(t *testing.T, r clustertest.Response, kind, id string) {
	t.Helper()
	var e struct {
		StatusCode int    `json:"statusCode"`
		Message    string `json:"message"`
		Reason     string `json:"reason"`
	}
	r.JSON(t, &e)
	if r.Status != 404 || e.StatusCode != 404 || e.Reason != "retention" || !strings.Contains(e.Message, "removed by the retention policy") || !strings.Contains(e.Message, id) ||
		!strings.HasPrefix(e.Message, kind) {
		t.Fatalf("%s %s: %d %s", kind, id, r.Status, r.Body)
	}
}
