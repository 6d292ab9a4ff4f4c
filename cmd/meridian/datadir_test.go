package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/shared/datadir"
)

// dev, control and edge lock --data before they read or write anything in
// it: given a directory another process holds, each stops at once naming
// the holder, and leaves the directory as it found it (no credentials.json,
// cluster.key, admin.token or egress files generated beside the holder's).
func TestCommandsLockTheirDataFirst(t *testing.T) {
	for _, tc := range []struct {
		name string
		args func(dir string) []string
	}{
		{"dev", func(dir string) []string {
			return []string{"dev", "--data", dir, "--http", "127.0.0.1:0", "--log-level", "error"}
		}},
		{"control", func(dir string) []string {
			return []string{"control", "--data", dir, "--http", "127.0.0.1:0", "--raft", "127.0.0.1:0", "--bootstrap", "--log-level", "error"}
		}},
		{"edge", func(dir string) []string {
			return []string{"edge", "--data", dir, "--control", "http://127.0.0.1:1", "--edge-token", "t", "--insecure-cluster-links", "--no-turn", "--http", "127.0.0.1:0", "--log-level", "error"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			held, err := datadir.Acquire(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer held.Close()
			done := make(chan error, 1)
			go func() { done <- run(tc.args(dir)) }()
			select {
			case err := <-done:
				want := fmt.Sprintf("data directory %s is in use by process %d", dir, os.Getpid())
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("meridian %s on a held data directory: %v, want an error saying %q", tc.name, err, want)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("meridian %s on a held data directory did not stop in 20 s", tc.name)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			if len(names) != 1 || names[0] != datadir.LockFile {
				t.Fatalf("meridian %s wrote into a data directory it does not hold: %v", tc.name, names)
			}
		})
	}
}
