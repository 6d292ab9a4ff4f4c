package main

import (
	"bytes"
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestRetentionFlag: --retention defaults to keeping history forever, takes
// days ("30d", "1d12h") or Go durations down to a minute, and refuses
// shorter, negative or malformed periods with an error naming the value.
func TestRetentionFlag(t *testing.T) {
	const day = 24 * time.Hour
	for _, tc := range []struct {
		args []string
		keep time.Duration
		err  string
	}{
		{nil, 0, ""},
		{[]string{"--retention", "0"}, 0, ""},
		{[]string{"--retention", "0d"}, 0, ""},
		{[]string{"--retention", "720h"}, 30 * day, ""},
		{[]string{"--retention", "30d"}, 30 * day, ""},
		{[]string{"--retention", "1d12h"}, 36 * time.Hour, ""},
		{[]string{"--retention", "1h"}, time.Hour, ""},
		{[]string{"--retention", "2m"}, 2 * time.Minute, ""},
		{[]string{"--retention", "1m"}, time.Minute, ""},
		{[]string{"--retention", "30s"}, 0, "at least 1m"},
		{[]string{"--retention", "-24h"}, 0, "negative"},
		{[]string{"--retention", "1d-2h"}, 0, "negative"},
		{[]string{"--retention", "30"}, 0, "not a period"},
		{[]string{"--retention", ""}, 0, "not a period"},
		{[]string{"--retention", "30days"}, 0, "not a period"},
		{[]string{"--retention", "1.5d"}, 0, "whole number"},
		{[]string{"--retention", "d"}, 0, "whole number"},
		{[]string{"--retention", "60000d2000000h"}, 0, "too long"},
	} {
		fs := flag.NewFlagSet("control", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var f controlFlags
		f.register(fs, false)
		err := fs.Parse(tc.args)
		var keep time.Duration
		if err == nil {
			c, cerr := f.retention.config()
			err, keep = cerr, c.Keep
		}
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%v: error %v, want one saying %q", tc.args, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.err == "" && keep != tc.keep:
			t.Errorf("%v: keep %v, want %v", tc.args, keep, tc.keep)
		}
	}
}

// TestRetentionWarnsUnderADay: a period under a day is logged at startup
// (30m written for 30 days would delete history within the hour); a day or
// more, or forever, is not.
func TestRetentionWarnsUnderADay(t *testing.T) {
	for _, tc := range []struct {
		value string
		warn  bool
	}{{"0", false}, {"30m", true}, {"23h", true}, {"1d", false}, {"720h", false}} {
		var out bytes.Buffer
		var r retentionFlags
		if err := r.keep.Set(tc.value); err != nil {
			t.Fatal(err)
		}
		r.warn(slog.New(slog.NewTextHandler(&out, nil)))
		if got := strings.Contains(out.String(), "level=WARN") && strings.Contains(out.String(), "retention="); got != tc.warn {
			t.Errorf("--retention %s: warned %v, want %v (log %q)", tc.value, got, tc.warn, out.String())
		}
	}
}
