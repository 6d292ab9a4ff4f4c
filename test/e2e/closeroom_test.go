package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/shared/edgeapi"
)

// closeRecorder is an edge's internal API that records the room closes it
// is asked for; fail makes it answer 503 to that many first closes, stall
// makes it hold every close until the test ends (a stopped process).
type closeRecorder struct {
	srv    *httptest.Server
	mu     sync.Mutex
	calls  int
	closed []edgeapi.CloseRoom
	kicked []edgeapi.RemoveParticipant
	fail   int
}

func newCloseRecorder(t *testing.T, fail int, stall bool) *closeRecorder {
	r := &closeRecorder{fail: fail}
	release := make(chan struct{})
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/internal/v1/rooms/close" && req.URL.Path != "/internal/v1/rooms/remove-participant" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, "{}")
			return
		}
		raw, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.calls++
		failNow := r.calls <= r.fail
		if !failNow && !stall {
			if req.URL.Path == "/internal/v1/rooms/close" {
				var cr edgeapi.CloseRoom
				_ = json.Unmarshal(raw, &cr)
				r.closed = append(r.closed, cr)
			} else {
				var rp edgeapi.RemoveParticipant
				_ = json.Unmarshal(raw, &rp)
				r.kicked = append(r.kicked, rp)
			}
		}
		r.mu.Unlock()
		if stall {
			select {
			case <-release:
			case <-req.Context().Done():
			}
			return
		}
		if failNow {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, `{"removed":0}`)
	}))
	t.Cleanup(func() { close(release); r.srv.Close() })
	return r
}

func (r *closeRecorder) state() (calls int, closed []edgeapi.CloseRoom) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls, append([]edgeapi.CloseRoom(nil), r.closed...)
}

func (r *closeRecorder) removals() []edgeapi.RemoveParticipant {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]edgeapi.RemoveParticipant(nil), r.kicked...)
}

// TestParticipantRemovalReachesItsEdge: a participant removed through the
// API whose edge fails the first calls is disconnected once the edge
// answers again (asked in the background, with the moment it was removed).
func TestParticipantRemovalReachesItsEdge(t *testing.T) {
	c := webhookCluster(t, 1)
	flaky := newCloseRecorder(t, 2, false)
	fe := startAgentAt(t, c, "flaky", "eu-west", flaky.srv.URL)
	var room struct{ RoomID string }
	c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{}).JSON(t, &room)
	fe.Report(edgeapi.Event{ID: "j-bob", Kind: edgeapi.EventParticipantJoined, RoomID: room.RoomID, ParticipantID: "bob", Name: "Bob", At: time.Now().UTC()})
	clustertest.Eventually(t, 10*time.Second, func() string {
		if r := c.Do(0, "POST", "/v2/sessions/participants/remove", c.Token(), map[string]any{"roomId": room.RoomID, "participantId": "bob"}); r.Status != 200 {
			return fmt.Sprintf("remove: %d %s", r.Status, r.Body)
		}
		return ""
	})
	clustertest.Eventually(t, 15*time.Second, func() string {
		if k := flaky.removals(); len(k) != 1 || k[0].ParticipantID != "bob" || k[0].At.IsZero() {
			return fmt.Sprintf("the edge got removals %+v, want bob's with its time", k)
		}
		return ""
	})
}

// TestRoomCloseReachesEveryEdge: deactivating a room tells every edge to
// disconnect its participants. Two edges are stopped (they accept the
// call and never answer): the API still answers after one attempt's
// time, not one timeout per edge in turn. An edge that fails the first
// calls is asked again until it confirms, with the moment the room was
// closed (so that, arriving late, it spares the room's next session).
func TestRoomCloseReachesEveryEdge(t *testing.T) {
	c := webhookCluster(t, 1)
	healthy := newCloseRecorder(t, 0, false)
	flaky := newCloseRecorder(t, 3, false)
	stopped1 := newCloseRecorder(t, 0, true)
	stopped2 := newCloseRecorder(t, 0, true)
	startAgentAt(t, c, "healthy", "eu-west", healthy.srv.URL)
	startAgentAt(t, c, "flaky", "eu-west", flaky.srv.URL)
	startAgentAt(t, c, "stopped-1", "eu-west", stopped1.srv.URL)
	startAgentAt(t, c, "stopped-2", "eu-west", stopped2.srv.URL)
	var room struct{ RoomID string }
	c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{}).JSON(t, &room)

	began := time.Now()
	if r := c.Do(0, "POST", "/v2/rooms/deactivate", c.Token(), map[string]any{"roomId": room.RoomID}); r.Status != 200 {
		t.Fatalf("deactivate: %d %s", r.Status, r.Body)
	}
	took := time.Since(began)
	t.Logf("deactivate answered in %v with two stopped edges", took.Round(time.Millisecond))
	// One attempt is 2 s; calling the stopped edges one after the other,
	// each until the HTTP client's 5 s timeout, took 10 s.
	if took > 6*time.Second {
		t.Errorf("deactivate took %v: the stopped edges were waited for one after the other", took)
	}
	if _, closed := healthy.state(); len(closed) != 1 || closed[0].RoomID != room.RoomID || closed[0].At.IsZero() {
		t.Fatalf("healthy edge got closes %+v, want one for %s with its time", closed, room.RoomID)
	}
	clustertest.Eventually(t, 20*time.Second, func() string {
		calls, closed := flaky.state()
		if len(closed) != 1 {
			return fmt.Sprintf("flaky edge: %d calls, closes %+v", calls, closed)
		}
		return ""
	})
	_, hc := healthy.state()
	_, fc := flaky.state()
	if !fc[0].At.Equal(hc[0].At) {
		t.Errorf("the retried close says %v, the first one %v: want the moment the room was closed", fc[0].At, hc[0].At)
	}
	clustertest.Eventually(t, 15*time.Second, func() string {
		for name, r := range map[string]*closeRecorder{"stopped-1": stopped1, "stopped-2": stopped2} {
			if calls, _ := r.state(); calls < 3 {
				return fmt.Sprintf("%s was called %d times, want it asked again and again", name, calls)
			}
		}
		return ""
	})
}
