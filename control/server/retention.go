package server

import (
	"context"
	"errors"
	"time"

	"github.com/meridian-video/meridian/control/state"
)

// RetentionConfig is the operator's retention policy.
type RetentionConfig struct {
	// Keep is how long ended sessions (with participant timelines, stats,
	// leg stats and audits) and finished webhook deliveries are kept; 0
	// keeps them forever. Pending deliveries are never removed.
	Keep time.Duration
	// Every is how often the leader looks for expired records (default 1 min).
	Every time.Duration
	// Batch is the most records one purge command lists (default 500): small
	// log entries, short applies, reads never starved.
	Batch int
}

// retentionLoop runs on the leader only: it reads what expired before now
// minus the period and proposes PurgeExpired commands listing it, one small
// batch after another until nothing is left, then waits for the next round.
// The cutoff travels in the command, so replicas never read a clock.
func (s *Server) retentionLoop(ctx context.Context) error {
	rc := s.cfg.Retention
	every, batch := rc.Every, rc.Batch
	if every <= 0 {
		every = time.Minute
	}
	if batch <= 0 || batch > state.MaxPurgeBatch {
		batch = 500
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := s.purgeExpired(ctx, rc.Keep, batch); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (s *Server) purgeExpired(ctx context.Context, keep time.Duration, batch int) error {
	for ctx.Err() == nil {
		now := s.cfg.Now().UTC()
		var c state.PurgeExpired
		s.fsm.Read(func(st *state.Store) { c = st.Expired(now.Add(-keep), batch) })
		if c.Len() == 0 {
			return nil
		}
		c.At, c.Cutoff = now, now.Add(-keep)
		if _, _, err := s.node.Apply(ctx, state.CmdPurgeExpired, c); err != nil {
			var se *state.Error
			if errors.As(err, &se) {
				// A refused batch is a bug, not a reason to stop leading.
				s.log.Error("retention purge refused", "err", err)
				return nil
			}
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if c.Len() < batch {
			return nil
		}
	}
	return nil
}
