package gossip

import (
	"context"
	"log/slog"
	"strings"
)

// logWriter is the io.Writer behind memberlist's *log.Logger: each line goes
// to slog at Debug. It is also how suspicion is observed, because memberlist
// v0.7.0 exposes a member's suspect state nowhere else (Node.State is never
// set, see NotifyLeave): the line memberlist prints right before it marks a
// member suspect after this node's probe failed is turned into a suspect
// mark. It runs on memberlist's goroutines: it never blocks.
type logWriter struct {
	log       *slog.Logger
	onSuspect func(name string)
}

const (
	suspectPrefix = "[INFO] memberlist: Suspect "
	suspectSuffix = " has failed, no acks received"
)

// parseSuspect returns the node name of memberlist's "Suspect X has failed,
// no acks received" line.
func parseSuspect(line string) (string, bool) {
	rest, ok := strings.CutPrefix(line, suspectPrefix)
	if !ok {
		return "", false
	}
	name, ok := strings.CutSuffix(rest, suspectSuffix)
	if !ok || name == "" {
		return "", false
	}
	return name, true
}

func (w logWriter) Write(b []byte) (int, error) {
	line := strings.TrimRight(string(b), "\r\n")
	if name, ok := parseSuspect(line); ok && w.onSuspect != nil {
		w.onSuspect(name)
	}
	if w.log.Enabled(context.Background(), slog.LevelDebug) {
		level, msg := "", line
		if strings.HasPrefix(line, "[") {
			if i := strings.IndexByte(line, ']'); i > 0 {
				level, msg = line[1:i], strings.TrimSpace(line[i+1:])
			}
		}
		if !strings.HasPrefix(msg, "memberlist: ") {
			msg = "memberlist: " + msg
		}
		w.log.Debug(msg, "memberlistLevel", level)
	}
	return len(b), nil
}
