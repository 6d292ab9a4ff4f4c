package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/control/state"
)

// faultyTransport wraps node-to-node calls: onApply decides what happens
// to a forwarded write.
type faultyTransport struct {
	onApply atomic.Pointer[func(*http.Request) (*http.Response, error)]
}

func (f *faultyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if fn := f.onApply.Load(); fn != nil && strings.HasSuffix(r.URL.Path, "/internal/v1/raft/apply") {
		return (*fn)(r)
	}
	return http.DefaultTransport.RoundTrip(r)
}

func faultyCluster(t *testing.T, configure ...func(*server.Config)) (*clustertest.Cluster, *faultyTransport) {
	ft := &faultyTransport{}
	c := clustertest.New(t, 3, clustertest.Options{Configure: func(i int, cfg *server.Config) {
		cfg.Cluster.HTTPTransport = ft
		for _, f := range configure {
			f(cfg)
		}
	}})
	return c, ft
}

func rooms(c *clustertest.Cluster, i int) int {
	n := 0
	c.Node(i).Node().FSM().Read(func(s *state.Store) { n = s.RoomCount() })
	return n
}

// TestForwardedWriteWhoseAnswerIsLost: a follower forwards a create, the
// leader commits it, and the answer never comes back (the leader died, the
// connection broke). The follower sends the same request again; it must
// answer with the room that was created — not "already exists", and
// without creating a second one.
func TestForwardedWriteWhoseAnswerIsLost(t *testing.T) {
	c, ft := faultyCluster(t)
	follower := c.Followers()[0]
	var lost atomic.Int32
	fn := func(r *http.Request) (*http.Response, error) {
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err == nil && lost.Add(1) == 1 {
			resp.Body.Close()
			return nil, errors.New("connection reset by peer (injected after the leader answered)")
		}
		return resp, err
	}
	ft.onApply.Store(&fn)
	r := c.Do(follower, "POST", "/v2/rooms", c.Token(), map[string]any{})
	if r.Status != 200 {
		t.Fatalf("create through the follower after a lost answer: %d %s", r.Status, r.Body)
	}
	if lost.Load() < 2 {
		t.Fatalf("the write was not retried (%d attempts)", lost.Load())
	}
	clustertest.Eventually(t, 5*time.Second, func() string {
		if n := rooms(c, follower); n != 1 {
			return fmt.Sprintf("%d rooms, want exactly 1", n)
		}
		return ""
	})
}

// TestSilentLeaderDoesNotHoldForwards: the leader stops answering (as if
// paused) while a write is forwarded to it, and a new leader is elected.
// The forward is abandoned and the write lands on the new leader while the
// old one is still silent: the silence ends only when the test resumes it,
// after the answer, or when the forwarding HTTP client gives up — which
// here takes ten minutes (ApplyTimeout), so a follower that waited on its
// call instead of following leadership never answers within the test. The
// follower must give the call up because the leader changed (the call's
// context cancelled), not because its patience ran out (deadline
// exceeded): the election timeout, which bounds that patience, is made
// longer than it takes the followers to replace the stopped leader
// (heartbeat timeout).
func TestSilentLeaderDoesNotHoldForwards(t *testing.T) {
	c, ft := faultyCluster(t, func(cfg *server.Config) {
		cfg.Cluster.ApplyTimeout = 10 * time.Minute
		cfg.Cluster.ElectionTimeout = 5 * time.Second
	})
	leader := c.Leader()
	follower := c.Followers()[0]
	leaderURL := c.Node(leader).URL()
	resume := make(chan struct{})
	held := make(chan struct{}, 16)   // a forward reached the silent leader
	abandoned := make(chan error, 16) // ...and the follower gave it up
	fn := func(r *http.Request) (*http.Response, error) {
		if strings.HasPrefix(r.URL.String(), leaderURL) {
			held <- struct{}{}
			select {
			case <-r.Context().Done(): // the follower abandoned the call
				abandoned <- r.Context().Err()
				return nil, r.Context().Err()
			case <-resume: // the old leader wakes up
				return http.DefaultTransport.RoundTrip(r)
			}
		}
		return http.DefaultTransport.RoundTrip(r)
	}
	ft.onApply.Store(&fn)
	done := make(chan clustertest.Response, 1)
	go func() { done <- c.Do(follower, "POST", "/v2/rooms", c.Token(), map[string]any{}) }()
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("the write was never forwarded to the leader")
	}
	c.Stop(leader) // the silent leader is replaced
	select {
	case r := <-done:
		if r.Status != 200 {
			t.Fatalf("write after the leader went silent: %d %s", r.Status, r.Body)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("write still waiting on the silent leader")
	}
	close(resume) // only now does the old leader wake up
	select {
	case err := <-abandoned:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the forward to the silent leader was abandoned with %v, want it cancelled when leadership moved", err)
		}
	default:
		t.Fatal("the write was answered, but its forward to the silent leader was never abandoned")
	}
	if n := rooms(c, follower); n != 1 {
		t.Fatalf("%d rooms, want 1", n)
	}
}

// TestIdempotencyKey: the same key with the same request returns the first
// answer and creates nothing more; with another body it is refused (422);
// keys are per API key; without a key every POST creates.
func TestIdempotencyKey(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	f := c.Followers()[0]
	post := func(node int, key string, body map[string]any) clustertest.Response {
		req, _ := http.NewRequestWithContext(context.Background(), "POST", c.Node(node).URL()+"/v2/rooms", strings.NewReader(jsonOf(body)))
		req.Header.Set("Authorization", c.Token())
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = fmt.Fprint(&b, readAll(resp))
		return clustertest.Response{Status: resp.StatusCode, Body: []byte(b.String()), Header: resp.Header}
	}
	body := map[string]any{"autoCloseConfig": map[string]any{"type": "session-ends"}}
	first := post(f, "order-1234", body)
	again := post(f, "order-1234", body)
	if first.Status != 200 || again.Status != 200 || string(first.Body) != string(again.Body) {
		t.Fatalf("same key, same request:\n%d %s\n%d %s", first.Status, first.Body, again.Status, again.Body)
	}
	if again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatal("the repeat is not marked as a replay")
	}
	// Through another node: the stored answer itself (its links name the
	// node that answered first; a handler run again would name this one).
	elsewhere := post(0, "order-1234", body)
	if elsewhere.Status != 200 || string(elsewhere.Body) != string(first.Body) || elsewhere.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("same key through another node:\n%d %s\nfirst answer:\n%s", elsewhere.Status, elsewhere.Body, first.Body)
	}
	if r := post(f, "order-1234", map[string]any{}); r.Status != 422 || !strings.Contains(string(r.Body), "Idempotency-Key") {
		t.Fatalf("same key, other request: %d %s", r.Status, r.Body)
	}
	if r := post(f, strings.Repeat("x", 300), map[string]any{}); r.Status != 400 {
		t.Fatalf("oversized key: %d %s", r.Status, r.Body)
	}
	post(f, "", map[string]any{})
	post(f, "", map[string]any{})
	clustertest.Eventually(t, 5*time.Second, func() string {
		if n := rooms(c, f); n != 3 {
			return fmt.Sprintf("%d rooms, want 3 (one keyed + two unkeyed)", n)
		}
		return ""
	})
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func readAll(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestIdempotencyKeyConcurrentCopies: copies of one keyed request sent at
// once through every node (none finds a stored answer: they all run) apply
// once and all answer with the one stored answer — the first stored —
// whose links name the node that stored it, not the node asked.
func TestIdempotencyKeyConcurrentCopies(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	const copies = 9
	answers := make(chan clustertest.Response, copies)
	start := make(chan struct{})
	token := c.Token()
	for i := range copies {
		url := c.Node(i%3).URL() + "/v2/rooms"
		go func() {
			<-start
			req, _ := http.NewRequest("POST", url, strings.NewReader(`{"customRoomId":"concurrent"}`))
			req.Header.Set("Authorization", token)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", "same-key")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				answers <- clustertest.Response{Body: []byte(err.Error())}
				return
			}
			defer resp.Body.Close()
			answers <- clustertest.Response{Status: resp.StatusCode, Body: []byte(readAll(resp))}
		}()
	}
	close(start)
	var first clustertest.Response
	for i := range copies {
		r := <-answers
		if r.Status != 200 {
			t.Fatalf("copy answered %d %s", r.Status, r.Body)
		}
		if i == 0 {
			first = r
		} else if string(r.Body) != string(first.Body) {
			t.Fatalf("copies answered differently:\n%s\n%s", first.Body, r.Body)
		}
	}
	clustertest.Eventually(t, 5*time.Second, func() string {
		for i := range 3 {
			if n := rooms(c, i); n != 1 {
				return fmt.Sprintf("node%d has %d rooms, want 1", i, n)
			}
		}
		return ""
	})
}
