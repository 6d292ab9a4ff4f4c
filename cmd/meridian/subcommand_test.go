package main

import (
	"errors"
	"flag"
	"strings"
	"testing"
)

// Commands with subcommands answer -h with their subcommands and name them
// when one is missing or unknown, before reading flags or files (an unknown
// subcommand used to fail on the missing admin token first).
func TestSubcommands(t *testing.T) {
	for _, cmd := range []string{"keys", "rooms", "certs"} {
		for _, h := range []string{"-h", "--help", "help"} {
			if err := run([]string{cmd, h}); !errors.Is(err, flag.ErrHelp) {
				t.Errorf("meridian %s %s: %v, want help", cmd, h, err)
			}
		}
		err := run([]string{cmd, "bogus", "--data", t.TempDir()})
		if err == nil || !strings.Contains(err.Error(), `unknown subcommand "bogus"`) {
			t.Errorf("meridian %s bogus: %v, want an unknown subcommand", cmd, err)
		}
		if err := run([]string{cmd}); err == nil || !strings.Contains(err.Error(), "missing subcommand") {
			t.Errorf("meridian %s: %v, want a missing subcommand", cmd, err)
		}
	}
	// A known subcommand still reads its flags and their files.
	if err := run([]string{"keys", "list", "--data", t.TempDir()}); err == nil || !strings.Contains(err.Error(), "admin.token") {
		t.Errorf("meridian keys list without a token: %v, want the admin token missing", err)
	}
	if err := run([]string{"certs", "ca", "-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("meridian certs ca -h: %v, want its flags", err)
	}
	if err := run([]string{"rooms", "list"}); err == nil || !strings.Contains(err.Error(), "--api-key and --api-secret are required") {
		t.Errorf("meridian rooms list without a key: %v", err)
	}
}
