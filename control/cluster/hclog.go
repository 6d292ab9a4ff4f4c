package cluster

import (
	"context"
	"io"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// newHCLogAdapter routes hashicorp/raft's hclog records (warnings and up)
// into slog as structured records: raft's level becomes the record's level
// (an error stays an error), its key-value pairs become attributes, and the
// logger's name (raft, raft-net, ...) the component. A text writer between
// the two would log everything at one level with hclog's "[WARN]  raft:"
// prefix inside the message.
func newHCLogAdapter(l *slog.Logger) hclog.Logger {
	// The intercepted logger itself writes nowhere; its level still tells
	// raft which records are worth building (IsDebug and the like).
	il := hclog.NewInterceptLogger(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: io.Discard})
	il.RegisterSink(slogSink{l})
	return il
}

// slogSink receives every record of the intercepted logger, whatever its
// level, so it drops those below a warning itself.
type slogSink struct{ l *slog.Logger }

func (s slogSink) Accept(name string, level hclog.Level, msg string, args ...interface{}) {
	if level < hclog.Warn || level == hclog.Off {
		return
	}
	lvl := slog.LevelWarn
	switch {
	case level >= hclog.Error:
		lvl = slog.LevelError
	case firstElection(msg, args):
		lvl = slog.LevelInfo
	}
	attrs := make([]any, 0, len(args)+2)
	attrs = append(attrs, "component", name)
	attrs = append(attrs, args...)
	s.l.Log(context.Background(), lvl, msg, attrs...)
}

// electionMsg is what raft warns when a follower's heartbeat timeout
// expires and it stands for election.
const electionMsg = "heartbeat timeout reached, starting election"

// firstElection reports whether a record is raft's election warning from a
// node that has heard no leader since it started (last-leader-id empty):
// every fresh start and whole-cluster restart elects a leader that way —
// every `meridian dev` start did, with a warning. Once a node has heard a
// leader, the same record means it lost it and stays a warning.
func firstElection(msg string, args []interface{}) bool {
	if msg != electionMsg {
		return false
	}
	for i := 0; i+1 < len(args); i += 2 {
		if k, _ := args[i].(string); k == "last-leader-id" {
			id, _ := args[i+1].(string)
			return id == ""
		}
	}
	return false
}
