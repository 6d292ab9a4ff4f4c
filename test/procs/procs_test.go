package procs

import (
	"os"
	"testing"
	"time"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// TestHarness: a one-node cluster and an edge on loopback start, answer
// /healthz, stop answering while paused, and end as asked (SIGTERM: clean
// exit; SIGKILL: killed).
func TestHarness(t *testing.T) {
	cl := StartCluster(t, ClusterOptions{Nodes: 1})
	key := cl.NewAPIKey(t, cl.Nodes[0])
	if key.Crawler(t) == "" || key.RTC(t, "p") == "" {
		t.Fatal("no tokens")
	}
	if l := cl.Leader(t, 5*time.Second); l != cl.Nodes[0] {
		t.Fatalf("leader %s", l.ID)
	}
	e := StartEdge(t, EdgeOptions{ID: "paris-1", Region: "eu-west", Controls: cl.URLs(), EdgeToken: cl.EdgeToken})
	e.WaitHealthy(t, 20*time.Second)
	if m, err := e.Metrics(); err != nil || len(m) == 0 {
		t.Fatalf("metrics: %v", err)
	}

	e.Pause(t)
	if _, err := quick.Get(e.URL + "/healthz"); err == nil {
		t.Fatal("a paused edge answered")
	}
	e.Resume(t)
	e.WaitHealthy(t, 5*time.Second)

	took, err := e.Stop(t, 20*time.Second)
	if err != nil {
		t.Fatalf("edge exit after SIGTERM: %v\n%s", err, e.Tail(20))
	}
	t.Logf("edge stopped %v after SIGTERM", took.Round(time.Millisecond))
	c := cl.Nodes[0]
	c.Kill(t)
	if done, err := c.Exited(); !done || err == nil || c.Unexpected() != nil {
		t.Fatalf("after Kill: exited %v, %v, unexpected %v", done, err, c.Unexpected())
	}
}
