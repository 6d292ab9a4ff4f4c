package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-video/meridian/shared/wait"
	"github.com/meridian-video/meridian/test/procs"
)

func TestMain(m *testing.M) { os.Exit(procs.Main(m)) }

// long: MERIDIAN_CHAOS_LONG=1 (make chaos).
func long() bool { return os.Getenv("MERIDIAN_CHAOS_LONG") == "1" }

// sabotage reports whether MERIDIAN_CHAOS_BREAK names what: used once per
// check to show that the check fails when the property is broken.
//
//	model    the register model believes a deactivated room reads as active
//	sessions the sessions model believes an ended session is still ongoing
//	lost     an acknowledged room is dropped from the final listing of one node
//	dup      a second room is invented for one customRoomId in a final listing
//	ikdup    a second room is invented for one Idempotency-Key in a final listing
//	diverge  one node's final listing misses a room the others have
//	sig      the receiver verifies signatures with a wrong secret
//	order    the receiver records one room's deliveries in reverse order
//	missing  the receiver forgets one acknowledged delivery
//	spurious the expected events of one synthetic room lose one event
//	unknown  requests that time out count as failed (not unknown): writes
//	         that did happen then look like phantoms
//	retry    the client drops every Retry-After header it receives
func sabotage(what string) bool { return os.Getenv("MERIDIAN_CHAOS_BREAK") == what }

var (
	outOnce sync.Once
	outPath string
)

// evidencePath names a file in the directory where failed checks leave
// their evidence ($MERIDIAN_CHAOS_OUT, else a new temporary directory that
// is kept).
func evidencePath(t *testing.T, name string) string {
	outOnce.Do(func() {
		if d := os.Getenv("MERIDIAN_CHAOS_OUT"); d != "" {
			_ = os.MkdirAll(d, 0o755)
			outPath = d
			return
		}
		d, err := os.MkdirTemp("", "meridian-chaos-")
		if err != nil {
			t.Logf("evidence directory: %v", err)
			d = os.TempDir()
		}
		outPath = d
	})
	return filepath.Join(outPath, name)
}

// ---- HTTP -----------------------------------------------------------------

// transport is shared by every client of a test; connections to a killed
// node fail and are replaced.
func newTransport() *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
	}
}

// answer is one HTTP exchange as a client saw it.
type answer struct {
	Status int    // 0: no HTTP answer
	Body   []byte // the response body
	Class  string // "ok" (2xx), "404", "4xx", "503", "5xx", "timeout", "refused", "reset", "neterr"
	Err    string
	// RetryAfter is the Retry-After header (every 503 must carry one).
	RetryAfter string
}

// definite: the server answered something that settles the outcome (2xx or
// a 4xx other than 408/429).
func (a answer) definite() bool {
	return a.Status/100 == 2 || (a.Status/100 == 4 && a.Status != 408 && a.Status != 429)
}

func classify(status int, err error) string {
	switch {
	case err == nil && status/100 == 2:
		return "ok"
	case err == nil && status == 503:
		return "503"
	case err == nil && status == 404:
		return "404"
	case err == nil && status/100 == 4:
		return "4xx"
	case err == nil:
		return "5xx"
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.EPIPE):
		return "reset"
	default:
		return "neterr"
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// api talks to the control nodes with one token.
type api struct {
	hc    *http.Client
	token string
}

func newAPI(token string) *api {
	return &api{hc: &http.Client{Transport: newTransport()}, token: token}
}

// do sends one request with a deadline and reads the whole answer.
func (a *api) do(base, method, path string, body any, hdr map[string]string, timeout time.Duration) answer {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return answer{Class: "neterr", Err: err.Error()}
	}
	req.Header.Set("Authorization", a.token)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return answer{Class: classify(0, err), Err: err.Error()}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return answer{Status: resp.StatusCode, Class: classify(0, err), Err: "reading the body: " + err.Error()}
	}
	ra := resp.Header.Get("Retry-After")
	if sabotage("retry") {
		ra = ""
	}
	return answer{Status: resp.StatusCode, Body: b, Class: classify(resp.StatusCode, nil), RetryAfter: ra}
}

// mustJSON is for setup and final checks: it retries (round robin over
// bases) until a 2xx, failing after within, and decodes the answer.
func (a *api) mustJSON(t *testing.T, bases []string, method, path string, body any, out any, within time.Duration) {
	t.Helper()
	var ok answer
	i := 0
	wait.Until(t, within, labelled(method+" "+path, func() string {
		x := a.do(bases[i%len(bases)], method, path, body, nil, 10*time.Second)
		i++
		if x.Status/100 != 2 {
			return fmt.Sprintf("last answer %d %s %s", x.Status, x.Err, bytes.TrimSpace(x.Body))
		}
		ok = x
		return ""
	}))
	if out != nil {
		if err := json.Unmarshal(ok.Body, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, ok.Body)
		}
	}
}

// ---- error mix --------------------------------------------------------------

// mix counts answers by operation and class.
type mix struct {
	mu   sync.Mutex
	n    map[string]map[string]int // op -> class -> count
	bad  []string                  // 5xx other than 503, and 503s without Retry-After (first 20)
	badN int
}

func (m *mix) add(op string, a answer, where ...string) {
	class := a.Class
	m.mu.Lock()
	defer m.mu.Unlock()
	if class == "5xx" || (class == "503" && a.RetryAfter == "") {
		m.badN++
		if len(m.bad) < 20 {
			m.bad = append(m.bad, fmt.Sprintf("%s %s: %d (Retry-After %q) %s", op, strings.Join(where, " "), a.Status, a.RetryAfter, bytes.TrimSpace(a.Body)))
		}
	}
	if m.n == nil {
		m.n = map[string]map[string]int{}
	}
	if m.n[op] == nil {
		m.n[op] = map[string]int{}
	}
	m.n[op][class]++
}

func (m *mix) String() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	total := map[string]int{}
	var ops []string
	for op, byClass := range m.n {
		ops = append(ops, op)
		for c, k := range byClass {
			total[c] += k
		}
	}
	sort.Strings(ops)
	var b strings.Builder
	line := func(name string, byClass map[string]int) {
		var cs []string
		sum := 0
		for c := range byClass {
			cs = append(cs, c)
			sum += byClass[c]
		}
		sort.Strings(cs)
		fmt.Fprintf(&b, "  %-12s %6d:", name, sum)
		for _, c := range cs {
			fmt.Fprintf(&b, " %s=%d", c, byClass[c])
		}
		b.WriteString("\n")
	}
	for _, op := range ops {
		line(op, m.n[op])
	}
	line("all", total)
	return b.String()
}

// check fails t for every answer that was a 5xx other than 503, or a 503
// without Retry-After: an uncertain outcome must be a retryable 503.
func (m *mix) check(t *testing.T) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, x := range m.bad {
		t.Errorf("not a retryable answer (want 503 with Retry-After): %s", x)
	}
	if m.badN > len(m.bad) {
		t.Errorf("... and %d more", m.badN-len(m.bad))
	}
}

// ---- misc -------------------------------------------------------------------

// labelled prefixes cond's reasons with what is being waited for, so a
// wait.Until failure names it.
func labelled(what string, cond func() string) func() string {
	return func() string {
		if why := cond(); why != "" {
			return what + ": " + why
		}
		return ""
	}
}

// waitKey waits until every node accepts token, an API key just created
// through one node (keys are authenticated from each node's local state,
// which catches up with the leader on a miss): a 401 from any node fails
// the test.
func waitKey(t *testing.T, a *api, cl *procs.Cluster) {
	t.Helper()
	for _, c := range cl.Nodes {
		wait.Until(t, 20*time.Second, labelled("node "+c.ID+" accepts the new API key", func() string {
			x := a.do(c.URL, "GET", "/v2/rooms?perPage=1", nil, nil, 5*time.Second)
			if x.Status == 401 {
				t.Errorf("a new API key was refused by %s: 401 %s", c.ID, bytes.TrimSpace(x.Body))
			}
			if x.Status != 200 {
				return fmt.Sprintf("%d %s %s", x.Status, x.Err, bytes.TrimSpace(x.Body))
			}
			return ""
		}))
	}
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }
