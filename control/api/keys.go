package api

import (
	"context"
	"sync"
	"time"

	"github.com/meridian-video/meridian/control/cluster"
	"github.com/meridian-video/meridian/control/state"
)

// keyCatchUpEvery spaces the catch-ups a follower makes for unknown keys.
const keyCatchUpEvery = 50 * time.Millisecond

// catchUpKeys is the auth.KeyStore of a node that may be a few entries
// behind the leader. An API key created (and acknowledged) through another
// node a moment ago would be "unknown apikey" here, so a follower that
// misses a key catches up with the leader once before saying so, as room
// lookups do (readOrCatchUp). The leader applies what it commits before
// answering, so it never needs to. Catch-ups are shared and spaced: a miss
// is served by any catch-up that started after it arrived, and a new one
// starts at most every keyCatchUpEvery, so requests with made-up keys
// cannot turn into a stream of Raft barriers.
type catchUpKeys struct {
	fsmKeys
	node *cluster.Node

	mu        sync.Mutex
	lastStart time.Time
}

func (k *catchUpKeys) APIKey(key string) (*state.APIKey, bool) {
	arrived := time.Now()
	if out, ok := k.fsmKeys.APIKey(key); ok || k.node.IsLeader() {
		return out, ok
	}
	k.catchUp(arrived)
	return k.fsmKeys.APIKey(key)
}

func (k *catchUpKeys) APIKeyBySecretHash(h string) (*state.APIKey, bool) {
	arrived := time.Now()
	if out, ok := k.fsmKeys.APIKeyBySecretHash(h); ok || k.node.IsLeader() {
		return out, ok
	}
	k.catchUp(arrived)
	return k.fsmKeys.APIKeyBySecretHash(h)
}

// catchUp returns once a catch-up that started after arrived is over (best
// effort: a failed one leaves the answer to local state).
func (k *catchUpKeys) catchUp(arrived time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.lastStart.After(arrived) {
		return
	}
	if d := time.Until(k.lastStart.Add(keyCatchUpEvery)); d > 0 {
		time.Sleep(d)
	}
	k.lastStart = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = k.node.Barrier(ctx)
}
