package main

import (
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/placement"
)

// TestRejoinGraceFlag: --rejoin-grace reaches the placement config,
// defaults to placement's own default, and a value outside 0–10m is
// refused with a message naming the flag.
func TestRejoinGraceFlag(t *testing.T) {
	for _, c := range []struct {
		args    []string
		want    time.Duration
		wantErr string
	}{
		{nil, placement.DefaultConfig().RejoinGrace, ""},
		{[]string{"--rejoin-grace", "0"}, 0, ""},
		{[]string{"--rejoin-grace", "45s"}, 45 * time.Second, ""},
		{[]string{"--rejoin-grace", "11m"}, 0, "--rejoin-grace 11m0s: want 0 to 10m0s"},
		{[]string{"--rejoin-grace", "-1s"}, 0, "--rejoin-grace -1s: want 0 to 10m0s"},
	} {
		fs, f := controlFlagSet()
		if err := parseFlags(fs, c.args); err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		pc, err := f.placement()
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("%v: error %v, want %q", c.args, err, c.wantErr)
			}
			continue
		}
		if err != nil || pc.RejoinGrace != c.want {
			t.Fatalf("%v: RejoinGrace %v (error %v), want %v", c.args, pc.RejoinGrace, err, c.want)
		}
		if pc.DownAfter != placement.DefaultConfig().DownAfter {
			t.Fatalf("%v: the flag changed DownAfter to %v", c.args, pc.DownAfter)
		}
	}
}
