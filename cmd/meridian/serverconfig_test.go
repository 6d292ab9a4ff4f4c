package main

import (
	"flag"
	"io"
	"log/slog"
	"testing"

	"github.com/meridian-video/meridian/control/server"
)

// serverConfigFor parses args as `meridian control` flags (`meridian dev`
// ones with dev), on a fresh data directory and --http 127.0.0.1:8080
// unless args say otherwise, and returns what serverConfig makes of them.
func serverConfigFor(t *testing.T, dev bool, args ...string) (server.Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("control", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var f controlFlags
	f.register(fs, dev)
	if err := fs.Parse(append([]string{"--data", t.TempDir(), "--http", "127.0.0.1:8080"}, args...)); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return f.serverConfig(slog.New(slog.DiscardHandler))
}
