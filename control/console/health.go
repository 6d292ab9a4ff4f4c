package console

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/meridian-video/meridian/control/state"
)

// memberHealth is one Raft member as the node serving the console reaches
// it: its /healthz (ready only when it has caught up with the log and
// knows a leader), over the cluster's TLS when there is one.
type memberHealth struct {
	ID        string `json:"id"`
	URL       string `json:"url,omitempty"`
	Ready     bool   `json:"ready"`
	Status    int    `json:"status,omitempty"`
	Error     string `json:"error,omitempty"`
	LatencyMs int64  `json:"latencyMs"`
}

// clusterHealth is GET /console/api/cluster/health (any console role):
// every member's readiness, probed now, in parallel, 2 s at most.
func (cs *Console) clusterHealth(c *fiber.Ctx) error {
	op, err := cs.Session(c)
	if err != nil {
		return err
	}
	if op == nil {
		return unauthorized("not signed in")
	}
	servers, err := cs.node.Servers()
	if err != nil {
		return err
	}
	out := make([]memberHealth, len(servers))
	cs.node.FSM().Read(func(st *state.Store) {
		for i, sv := range servers {
			out[i].ID = string(sv.ID)
			if n, ok := st.Node(string(sv.ID)); ok {
				out[i].URL = n.HTTPAddr
			}
		}
	})
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range out {
		m := &out[i]
		if m.URL == "" {
			m.Error = "no API address registered"
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(m.URL, "/")+"/healthz", nil)
			if err != nil {
				m.Error = err.Error()
				return
			}
			resp, err := cs.probe.Do(req)
			m.LatencyMs = time.Since(start).Milliseconds()
			if err != nil {
				m.Error = "unreachable: " + truncate(err.Error(), 200)
				return
			}
			resp.Body.Close()
			m.Status, m.Ready = resp.StatusCode, resp.StatusCode == http.StatusOK
		}()
	}
	wg.Wait()
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(fiber.Map{"leader": cs.node.LeaderID(), "members": out})
}
