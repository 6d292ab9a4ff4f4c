package cluster_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/api"
	"github.com/meridian-video/meridian/control/cluster"
	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/server"
)

// TestLeaderKeepsTryingItsLeadershipSteps: a leadership step (an
// OnLeadership hook, like generating the cluster secrets) fails its first
// calls. A leader must not stay leader without its loops (no webhooks, no
// edge liveness, no auto-close): it retries until the step succeeds, here
// or on the next leader. With one node there is no one to hand leadership
// to, so a leader that only tried a transfer stayed loopless forever.
func TestLeaderKeepsTryingItsLeadershipSteps(t *testing.T) {
	for _, nodes := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d nodes", nodes), func(t *testing.T) {
			const failFirst = 8
			var calls atomic.Int32
			started := make(chan string, 64) // node ids whose probe loop started
			plugin := func(id string) server.Plugin {
				return func(s *server.Server) ([]api.Option, []cluster.LeaderLoop, error) {
					s.Node().OnLeadership(func(context.Context) error {
						if n := calls.Add(1); n <= failFirst {
							return fmt.Errorf("injected failure %d of %d", n, failFirst)
						}
						return nil
					})
					probe := cluster.LeaderLoop{Name: "probe", Run: func(ctx context.Context) error {
						started <- id
						<-ctx.Done()
						return ctx.Err()
					}}
					return nil, []cluster.LeaderLoop{probe}, nil
				}
			}
			// New returns when every node is ready, which needs the steps
			// registered after the failing one (cluster secrets) to have run.
			c := clustertest.New(t, nodes, clustertest.Options{Configure: func(i int, cfg *server.Config) {
				cfg.Plugins = append(cfg.Plugins, plugin(fmt.Sprintf("node%d", i)))
			}})
			leader := c.Leader() // exactly one node leads with its loops running
			select {
			case id := <-started:
				if want := fmt.Sprintf("node%d", leader); id != want {
					// A loop may have started on an earlier leader that lost
					// leadership since; the current one must have started too.
					if !probeStarted(started, want) {
						t.Fatalf("leader %s runs no probe loop (first started on %s)", want, id)
					}
				}
			case <-time.After(30 * time.Second):
				t.Fatal("no leader loop ever started")
			}
			if n := calls.Load(); n <= failFirst {
				t.Fatalf("the step ran %d times; it fails the first %d", n, failFirst)
			}
		})
	}
}

func probeStarted(started <-chan string, want string) bool {
	deadline := time.After(30 * time.Second)
	for {
		select {
		case id := <-started:
			if id == want {
				return true
			}
		case <-deadline:
			return false
		}
	}
}
