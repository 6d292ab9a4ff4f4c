package cluster

import (
	"bytes"
	"context"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// newHCLogAdapter routes hashicorp/raft's hclog output (warnings and up) into slog.
func newHCLogAdapter(l *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: slogWriter{l}, DisableTime: true})
}

type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Log(context.Background(), slog.LevelWarn, string(bytes.TrimSpace(p)), "component", "raft")
	return len(p), nil
}
