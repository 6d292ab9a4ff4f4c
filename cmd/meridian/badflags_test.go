package main

import (
	"strings"
	"testing"
)

// Values that used to be taken silently are refused at start, naming the
// flag: a negative (or NaN) rate limit meant "unlimited"; an edge's
// --control that is no http(s) URL failed every registration with
// "unsupported protocol scheme".
func TestBadValuesAreRefused(t *testing.T) {
	for _, dev := range []bool{false, true} {
		for _, tc := range []struct{ args, want string }{
			{"--rate-limit-key -1", "--rate-limit-key -1: want requests per second, 0 (unlimited) or more"},
			{"--rate-limit-ip NaN", "--rate-limit-ip NaN"},
			{"--rate-limit-ip +Inf", "--rate-limit-ip +Inf"},
			{"--rate-limit-key 0 --rate-limit-ip 0", ""},
		} {
			_, err := serverConfigFor(t, dev, strings.Fields(tc.args)...)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("dev=%v %s: %v", dev, tc.args, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("dev=%v %s: %v, want %q", dev, tc.args, err, tc.want)
			}
		}
	}
	for _, control := range []string{"ftp://x", "127.0.0.1:8080", "http://"} {
		err := run([]string{"edge", "--id", "e", "--control", control, "--edge-token", "t", "--no-turn", "--insecure-cluster-links", "--data", t.TempDir()})
		if want := `--control "` + control + `": want the http(s)://host:port of a control node`; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("edge --control %s: %v, want %q", control, err, want)
		}
	}
}
