package main

import (
	"strings"
	"testing"
)

// --peers must name every voter once, this node included: a list without
// this node used to bootstrap a configuration with it added, which the
// other voters did not share.
func TestPeersFlag(t *testing.T) {
	parse := func(args ...string) error {
		_, err := serverConfigFor(t, false, append([]string{"--id", "a", "--bootstrap"}, args...)...)
		return err
	}
	for _, tc := range []struct {
		peers, want string
	}{
		{"a=h1:7000,b=h2:7000,c=h3:7000", ""},
		{"", ""},
		{"b=h2:7000,c=h3:7000", "--peers does not name this node (--id a)"},
		{"a=h1:7000,b=h2:7000,b=h3:7000", `--peers names "b" twice`},
		{"a=h1:7000,b=h2:7000,c=h2:7000", `--peers gives "b" and "c" the same Raft address h2:7000`},
		{"a=h1:7000,bh2:7000", "must be id=raftaddr"},
	} {
		var args []string
		if tc.peers != "" {
			args = []string{"--peers", tc.peers}
		}
		err := parse(args...)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("--peers %q: %v", tc.peers, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("--peers %q: %v, want %q", tc.peers, err, tc.want)
		}
	}
}
