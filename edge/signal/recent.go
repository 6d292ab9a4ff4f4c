package signal

import "time"

// recentSet remembers keys for a while, each with a time: what an edge
// must hold against late or repeated requests (rooms the control plane
// closed, participants removed here) but never needs for long. It is
// pruned as keys are noted, so it holds about ttl's worth of them. Callers
// lock.
type recentSet[K comparable] struct {
	ttl    time.Duration
	at     map[K]time.Time
	pruned time.Time
}

func newRecentSet[K comparable](ttl time.Duration) *recentSet[K] {
	return &recentSet[K]{ttl: ttl, at: map[K]time.Time{}}
}

// note records k at t, unless it holds k at a later time; now is this
// edge's clock, against which times older than ttl are forgotten.
func (r *recentSet[K]) note(k K, t, now time.Time) {
	// A sweep at most every eighth of ttl: noting stays O(1) amortised
	// however many keys are noted at once.
	if now.Sub(r.pruned) >= r.ttl/8 {
		for key, at := range r.at {
			if now.Sub(at) >= r.ttl {
				delete(r.at, key)
			}
		}
		r.pruned = now
	}
	if t.After(r.at[k]) {
		r.at[k] = t
	}
}

// get returns the time k was noted at, if that is less than ttl before now.
func (r *recentSet[K]) get(k K, now time.Time) (time.Time, bool) {
	at, ok := r.at[k]
	return at, ok && now.Sub(at) < r.ttl
}

func (r *recentSet[K]) forget(k K) { delete(r.at, k) }
