package turn

import (
	"log/slog"
	"net/netip"
)

// validConfig is the smallest configuration Validate accepts.
func validConfig() Config {
	cfg := DefaultConfig()
	cfg.Secret = "0123456789abcdef0123"
	cfg.RelayAddress = netip.MustParseAddr("203.0.113.7")
	return cfg
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
