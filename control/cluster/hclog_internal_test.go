package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
)

// Raft's records reach slog at their own level, with their key-value pairs
// as attributes and the hclog logger's name as the component; below a
// warning they are dropped. The election of a node that has heard no
// leader since it started is expected (every fresh start) and is told at
// INFO; one that lost its leader stays a warning.
func TestRaftLogsAsStructuredSlogRecords(t *testing.T) {
	var buf bytes.Buffer
	l := newHCLogAdapter(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	l.Info("entering follower state", "follower", "c1")
	l.Debug("asking for vote", "term", 3)
	l.Warn("heartbeat timeout reached, starting election", "last-leader-addr", "", "last-leader-id", "")
	l.Warn("heartbeat timeout reached, starting election", "last-leader-addr", "127.0.0.1:7000", "last-leader-id", "c2")
	l.Named("net").Error("failed to accept connection", "error", errors.New("boom"))

	var recs []map[string]any
	dec := json.NewDecoder(&buf)
	for dec.More() {
		var r map[string]any
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if len(recs) != 3 {
		t.Fatalf("got %d records, want the two elections and the error only: %v", len(recs), recs)
	}
	want := []map[string]any{
		{"level": "INFO", "msg": "heartbeat timeout reached, starting election", "component": "raft", "last-leader-id": ""},
		{"level": "WARN", "msg": "heartbeat timeout reached, starting election", "component": "raft",
			"last-leader-addr": "127.0.0.1:7000", "last-leader-id": "c2"},
		{"level": "ERROR", "msg": "failed to accept connection", "component": "raft.net", "error": "boom"},
	}
	for i, w := range want {
		for k, v := range w {
			if recs[i][k] != v {
				t.Errorf("record %d: %s = %v, want %v (record %v)", i, k, recs[i][k], v, recs[i])
			}
		}
	}
}
