package main

import "testing"

func TestServerProcs(t *testing.T) {
	for _, c := range []struct {
		current int
		env     string
		want    int
	}{
		{1, "", 2},  // one CPU: raised, so an fsync does not stop every goroutine
		{2, "", 2},  // enough already
		{8, "", 8},  // never lowered
		{1, "1", 1}, // the operator's GOMAXPROCS wins
	} {
		if got := serverProcs(c.current, c.env); got != c.want {
			t.Errorf("serverProcs(%d, %q) = %d, want %d", c.current, c.env, got, c.want)
		}
	}
}
