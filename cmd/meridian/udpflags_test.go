package main

import (
	"flag"
	"io"
	"strings"
	"testing"
)

// TestUDPIPFlag: --udp-ip binds the edge's shared media socket to one
// address (sfu.Config.UDPMuxAddr), alone or with --udp-port; a bad address
// or a per-connection port range beside it is refused, naming the flag.
func TestUDPIPFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		addr string
		err  string
	}{
		{nil, "", ""},
		{[]string{"--udp-ip", "127.0.0.1"}, "127.0.0.1", ""},
		{[]string{"--udp-ip", "::1", "--udp-port", "7882"}, "::1", ""},
		{[]string{"--udp-ip", "10.0.0.300"}, "", "--udp-ip"},
		{[]string{"--udp-ip", "127.0.0.1", "--udp-port-min", "50000", "--udp-port-max", "50100"}, "", "--udp-port-min/max"},
	} {
		for _, dev := range []bool{true, false} {
			fs := flag.NewFlagSet("edge", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var e edgeFlags
			e.register(fs, dev)
			// Recordings and egress work files go to a temporary directory,
			// not to the default one beside the test's source.
			tmp := t.TempDir()
			args := append([]string{"--storage-dir", tmp}, tc.args...)
			if !dev {
				args = append([]string{"--region", "eu-west", "--no-turn", "--data", tmp}, args...)
			}
			if err := fs.Parse(args); err != nil {
				t.Fatalf("%v: %v", args, err)
			}
			if dev {
				e.region = "local" // as devEdgePlugin sets it
			}
			cfg, err := e.nodeConfig(dev, nil)
			switch {
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("%v: error %v, want one naming %q", tc.args, err, tc.err)
			case tc.err == "" && err != nil:
				t.Errorf("%v: %v", tc.args, err)
			case tc.err == "" && cfg.SFU.UDPMuxAddr != tc.addr:
				t.Errorf("%v (dev %v): UDPMuxAddr %q, want %q", tc.args, dev, cfg.SFU.UDPMuxAddr, tc.addr)
			}
		}
	}
}
