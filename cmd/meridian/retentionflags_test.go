package main

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

// TestRetentionFlag: --retention defaults to keeping history forever,
// takes Go durations of at least an hour, and refuses shorter periods (a
// typo such as 30m would otherwise delete history within the hour).
func TestRetentionFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		keep time.Duration
		err  string
	}{
		{nil, 0, ""},
		{[]string{"--retention", "720h"}, 720 * time.Hour, ""},
		{[]string{"--retention", "1h"}, time.Hour, ""},
		{[]string{"--retention", "30m"}, 0, "at least 1h"},
		{[]string{"--retention", "-24h"}, 0, "at least 1h"},
	} {
		fs := flag.NewFlagSet("control", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var f controlFlags
		f.register(fs, false)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		rc, err := f.retention.config()
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%v: error %v, want one saying %q", tc.args, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.err == "" && rc.Keep != tc.keep:
			t.Errorf("%v: keep %v, want %v", tc.args, rc.Keep, tc.keep)
		}
	}
}
