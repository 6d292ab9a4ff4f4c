package e2e

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/meridian-video/meridian/shared/porttest"
	"github.com/meridian-video/meridian/test/procs"
)

// goodGeoIP writes a small valid City database (one network, Paris).
func goodGeoIP(t *testing.T) []byte {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoIP2-City", RecordSize: 24, IPVersion: 6})
	if err != nil {
		t.Fatal(err)
	}
	_, n, _ := net.ParseCIDR("81.0.0.0/16") // a public range (documentation ranges are reserved)
	if err := tree.Insert(n, mmdbtype.Map{"location": mmdbtype.Map{"latitude": mmdbtype.Float64(48.86), "longitude": mmdbtype.Float64(2.35)}}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "good.mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// scramble overwrites the start of the database (its search tree and
// data) with 0xff, keeping the metadata at its end intact, so that the
// file still looks like a MaxMind database.
func scramble(good []byte) []byte {
	b := append([]byte(nil), good...)
	meta := strings.LastIndex(string(b), "\xab\xcd\xefMaxMind.com")
	for i := 0; i < meta/2; i++ {
		b[i] = 0xff
	}
	return b
}

// TestBrokenGeoIPDatabaseFailsStartup: `meridian control --geoip` with a
// database that cannot be opened (missing, empty, not a MaxMind file, cut
// short before its metadata) exits non-zero at startup with a message that
// names the file, never a panic and never a server running without the
// database it was told to use. The same file, whole, starts the node.
func TestBrokenGeoIPDatabaseFailsStartup(t *testing.T) {
	bin := procs.Bin(t)
	good := goodGeoIP(t)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	control := func(ctx context.Context, geoip string) *exec.Cmd {
		raft := porttest.Addr(t)
		args := []string{"control", "--id", "c1", "--http", porttest.Addr(t),
			"--raft", raft, "--raft-advertise", raft, "--data", t.TempDir(), "--bootstrap", "--peers", "c1=" + raft,
			"--cluster-key", strings.Repeat("ab", 32), "--edge-token", "edge-token-0123456789", "--admin-token", "admin-token-0123456789",
			"--region", "eu-west", "--geoip", geoip}
		if procs.HasFlag(t, "control", "insecure-cluster-links") {
			args = append(args, "--insecure-cluster-links")
		}
		return exec.CommandContext(ctx, bin, args...)
	}
	for _, tc := range []struct{ name, path string }{
		{"missing", filepath.Join(dir, "nowhere.mmdb")},
		{"empty", write("empty.mmdb", nil)},
		{"not a MaxMind database", write("text.mmdb", []byte(strings.Repeat("this is not a GeoIP database\n", 200)))},
		{"cut short", write("truncated.mmdb", good[:len(good)/2])},
		{"search tree overwritten", write("scrambled.mmdb", scramble(good))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A file wrongly accepted would start a server: bound it.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := control(ctx, tc.path).CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("meridian control --geoip %s kept running:\n%s", tc.path, out)
			}
			var ee *exec.ExitError
			if err == nil || !errors.As(err, &ee) || ee.ExitCode() <= 0 {
				t.Fatalf("meridian control --geoip %s: exit %v, want a non-zero exit:\n%s", tc.path, err, out)
			}
			if !strings.Contains(string(out), tc.path) {
				t.Fatalf("the startup error does not name %s:\n%s", tc.path, out)
			}
			if strings.Contains(string(out), "panic") || strings.Contains(string(out), "goroutine ") {
				t.Fatalf("meridian control panicked on a broken GeoIP file:\n%s", out)
			}
		})
	}
	// The whole file: the node starts (and is stopped by the context).
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	out, _ := control(ctx, write("good.mmdb", good)).CombinedOutput()
	if ctx.Err() == nil {
		t.Fatalf("meridian control --geoip with a valid database exited:\n%s", out)
	}
}
