package main

import (
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/cluster"
)

// TestRaftBatchLingerFlag: --raft-batch-linger reaches the cluster config,
// defaults to the cluster's own default, and a value outside 0–20ms is
// refused with a message naming the flag.
func TestRaftBatchLingerFlag(t *testing.T) {
	for _, c := range []struct {
		args    []string
		want    time.Duration
		wantErr string
	}{
		{nil, cluster.DefaultConfig().BatchLinger, ""},
		{[]string{"--raft-batch-linger", "0"}, 0, ""},
		{[]string{"--raft-batch-linger", "5ms"}, 5 * time.Millisecond, ""},
		{[]string{"--raft-batch-linger", "21ms"}, 0, "--raft-batch-linger 21ms: want 0 to 20ms"},
		{[]string{"--raft-batch-linger", "-1ms"}, 0, "--raft-batch-linger -1ms: want 0 to 20ms"},
	} {
		fs, f := controlFlagSet()
		if err := parseFlags(fs, c.args); err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		cc := cluster.DefaultConfig()
		cc.BatchLinger = -time.Hour // must be overwritten
		err := f.raft.apply(&cc)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("%v: error %v, want %q", c.args, err, c.wantErr)
			}
			continue
		}
		if err != nil || cc.BatchLinger != c.want {
			t.Fatalf("%v: BatchLinger %v (error %v), want %v", c.args, cc.BatchLinger, err, c.want)
		}
	}
}
