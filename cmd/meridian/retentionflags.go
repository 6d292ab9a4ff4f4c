package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/meridian-video/meridian/control/server"
)

// retentionFlags set how long history is kept (shared by control and dev).
type retentionFlags struct{ keep time.Duration }

func (r *retentionFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&r.keep, "retention", 0, "keep ended sessions (participant timelines, stats, audits) and finished webhook deliveries this long, e.g. 720h for 30 days; 0 keeps them forever. Pending deliveries are never removed")
}

func (r *retentionFlags) config() (server.RetentionConfig, error) {
	if r.keep != 0 && r.keep < time.Hour {
		return server.RetentionConfig{}, fmt.Errorf("--retention %v: must be 0 (keep forever) or at least 1h", r.keep)
	}
	return server.RetentionConfig{Keep: r.keep}, nil
}
