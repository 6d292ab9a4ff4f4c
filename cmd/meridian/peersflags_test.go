package main

import (
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// --peers must name every voter once, this node included: a list without
// this node used to bootstrap a configuration with it added, which the
// other voters did not share.
func TestPeersFlag(t *testing.T) {
	parse := func(args ...string) error {
		fs := flag.NewFlagSet("control", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var f controlFlags
		f.register(fs, false)
		if err := fs.Parse(append([]string{"--data", t.TempDir(), "--http", "127.0.0.1:8080", "--id", "a", "--bootstrap"}, args...)); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		_, err := f.serverConfig(slog.New(slog.NewTextHandler(io.Discard, nil)))
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
