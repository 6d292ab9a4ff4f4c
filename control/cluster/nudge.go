package cluster

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// commitNudger tells followers about a new commit index at once.
//
// A follower learns that an entry committed only from the leader's next
// AppendEntries, which comes with the next write or after CommitTimeout
// (50–100 ms). A write forwarded by a follower waits for its own node to
// apply it (read-your-writes), so a lone client writing through a follower
// would pay that timeout on every write. After answering a forwarded write
// the leader appends a barrier: the entry is replicated at once and carries
// the commit index, so the follower applies the write within a round trip.
// Nudges that arrive while a barrier is in flight share the next one, so a
// busy leader adds at most one barrier per round trip.
type commitNudger struct {
	raft    *raft.Raft
	timeout time.Duration

	mu      sync.Mutex
	running bool
	again   bool
}

func (c *commitNudger) nudge() {
	c.mu.Lock()
	if c.running {
		c.again = true
		c.mu.Unlock()
		return
	}
	c.running = true
	c.mu.Unlock()
	go c.run()
}

func (c *commitNudger) run() {
	for {
		// The outcome does not matter: on error (leadership lost, shutdown)
		// the follower learns the commit from the next leader instead.
		_ = c.raft.Barrier(c.timeout).Error()
		c.mu.Lock()
		if !c.again {
			c.running = false
			c.mu.Unlock()
			return
		}
		c.again = false
		c.mu.Unlock()
	}
}
