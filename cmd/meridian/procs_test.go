package main

import "testing"

func TestServerProcs(t *testing.T) {
	for _, c := range []struct {
		cmd     string
		current int
		env     string
		want    int
	}{
		{"control", 1, "", 2},  // one CPU: raised, so an fsync does not stop every goroutine
		{"dev", 1, "", 2},      // dev runs the control plane too
		{"control", 2, "", 2},  // enough already
		{"control", 8, "", 8},  // never lowered
		{"control", 1, "1", 1}, // the operator's GOMAXPROCS wins
		{"edge", 1, "", 1},     // an edge keeps one P per CPU
		{"edge", 4, "", 4},
	} {
		if got := serverProcs(c.cmd, c.current, c.env); got != c.want {
			t.Errorf("serverProcs(%q, %d, %q) = %d, want %d", c.cmd, c.current, c.env, got, c.want)
		}
	}
}
