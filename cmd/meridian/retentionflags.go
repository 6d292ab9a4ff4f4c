package main

import (
	"flag"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/meridian-video/meridian/control/server"
)

// minRetention is the shortest period --retention takes: below the leader's
// one-minute sweep a period would mean "delete as soon as it ends".
const minRetention = time.Minute

// retentionFlags set how long history is kept (shared by control and dev).
type retentionFlags struct{ keep retentionPeriod }

func (r *retentionFlags) register(fs *flag.FlagSet) {
	fs.Var(&r.keep, "retention", "keep ended sessions (participant timelines, stats, audits) and finished webhook deliveries this long: days (30d) or a Go duration (720h, 1d12h); 0 keeps them forever. Pending deliveries are never removed")
}

func (r *retentionFlags) config() (server.RetentionConfig, error) {
	keep := time.Duration(r.keep)
	if keep != 0 && keep < minRetention {
		return server.RetentionConfig{}, fmt.Errorf("--retention %v: must be 0 (keep forever) or at least %v", keep, minRetention)
	}
	return server.RetentionConfig{Keep: keep}, nil
}

// warn logs a period short enough to be a slip (30m written for 30 days):
// history deleted by retention cannot be brought back, so the operator
// should see the period the node runs with.
func (r *retentionFlags) warn(log *slog.Logger) {
	if keep := time.Duration(r.keep); keep > 0 && keep < 24*time.Hour {
		log.Warn("retention shorter than a day: ended sessions and finished webhook deliveries are deleted this long after they end", "retention", keep.String())
	}
}

// retentionPeriod is a time.Duration that also takes whole days ("30d",
// "1d12h"): retention is thought of in days, which Go durations lack.
type retentionPeriod time.Duration

func (p *retentionPeriod) String() string {
	d := time.Duration(*p)
	if d > 0 && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

func (p *retentionPeriod) Set(s string) error {
	var days time.Duration
	rest, hasDays := s, false
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseUint(s[:i], 10, 16)
		if err != nil {
			return fmt.Errorf("%q: days must be a whole number, as in 30d", s)
		}
		days, rest, hasDays = time.Duration(n)*24*time.Hour, s[i+1:], true
	}
	var d time.Duration
	if rest != "" || !hasDays {
		var err error
		if d, err = time.ParseDuration(rest); err != nil {
			return fmt.Errorf("%q: not a period such as 30d, 720h or 0", s)
		}
	}
	if d < 0 {
		return fmt.Errorf("%q: must not be negative", s)
	}
	if d > math.MaxInt64-days {
		return fmt.Errorf("%q: too long", s)
	}
	*p = retentionPeriod(days + d)
	return nil
}
