package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestJobsOfAKilledEdgeThatStaysDeadFail: the edge running a meeting
// recording and an HLS stream of the same session is SIGKILLed and not
// started again. The control plane declares it down (no heartbeat for
// DownAfter) and fails both jobs with a reason naming the edge; each sends
// its -failed webhook (and, failed being final, never -stopped) to a real
// receiver; neither job is left "running". Complements
// TestRecordingOnARestartedEdgeFails (same id restarted) and
// control/api's TestEgressJobsOfALostEdgeFail (heartbeats stopped, no
// process).
func TestJobsOfAKilledEdgeThatStaysDeadFail(t *testing.T) {
	w := startRecWorld(t)
	roomID := w.room(t, "dead-edge", []string{"recording-*", "hls-*"}, nil)
	w.publish(t, roomID, "frank")
	sessionID := w.session(t, roomID, 1)
	if st, b := w.rest.do(t, "POST", "/v2/recordings/start", map[string]any{"roomId": roomID, "config": map[string]any{"quality": "low"}}, nil); st != 200 {
		t.Fatalf("recording start: %d %s", st, b)
	}
	var hls struct{ ID string }
	if st, b := w.rest.do(t, "POST", "/v2/hls/start", map[string]any{"roomId": roomID, "config": map[string]any{"quality": "low"},
		"hls": map[string]any{"segmentSeconds": 1, "windowSegments": 3}}, &hls); st != 200 || hls.ID == "" {
		t.Fatalf("hls start: %d %s", st, b)
	}
	type job struct{ ID, Status, Error, EdgeID string }
	var rec, streams struct{ Data []job }
	jobs := func() (string, string) {
		_, b1 := w.rest.do(t, "GET", "/v2/recordings?roomId="+roomID, nil, &rec)
		_, b2 := w.rest.do(t, "GET", "/v2/hls?roomId="+roomID, nil, &streams)
		return string(b1), string(b2)
	}
	recWait(t, "both jobs running on rec-edge", 30*time.Second, func() (bool, string) {
		b1, b2 := jobs()
		ok := len(rec.Data) == 1 && rec.Data[0].Status == "running" && rec.Data[0].EdgeID == "rec-edge" &&
			len(streams.Data) == 1 && streams.Data[0].Status == "running" && streams.Data[0].EdgeID == "rec-edge"
		return ok, b1 + " " + b2
	})

	w.edge.Kill(t) // SIGKILL, and no restart

	// The edge is declared down after DownAfter (5 s by default) without
	// heartbeats; the egress loop fails its jobs within a second of that.
	recWait(t, "both jobs failed", 45*time.Second, func() (bool, string) {
		b1, b2 := jobs()
		return len(rec.Data) == 1 && rec.Data[0].Status == "failed" && len(streams.Data) == 1 && streams.Data[0].Status == "failed", b1 + " " + b2
	})
	for _, j := range []job{rec.Data[0], streams.Data[0]} {
		if !strings.Contains(j.Error, "edge rec-edge lost") {
			t.Errorf("job %s failed with reason %q, want one naming the lost edge rec-edge", j.ID, j.Error)
		}
	}
	if streams.Data[0].ID != hls.ID {
		t.Fatalf("hls job %s, started %s", streams.Data[0].ID, hls.ID)
	}
	recWait(t, "recording-failed and hls-failed at the receiver", 30*time.Second, func() (bool, string) {
		r, okR := w.hook("recording-failed")
		h, okH := w.hook("hls-failed")
		return okR && okH && r.field("sessionId") == sessionID && r.field("meetingId") == roomID &&
			h.field("sessionId") == sessionID && h.field("meetingId") == roomID, fmt.Sprint(w.hookTypes(""))
	})
	// Failed is final: no -stopped for either job, and the jobs read failed
	// (not running) through the API afterwards, on the single and the
	// per-id routes.
	got := w.hookTypes("")
	if slices.Contains(got, "recording-stopped") || slices.Contains(got, "hls-stopped") {
		t.Errorf("a failed job also sent -stopped: %v", got)
	}
	for _, path := range []string{"/v2/recordings/" + rec.Data[0].ID, "/v2/hls/" + hls.ID} {
		var one job
		if st, b := w.rest.do(t, "GET", path, nil, &one); st != 200 || one.Status != "failed" {
			t.Errorf("GET %s after the edge died: %d %s", path, st, b)
		}
	}
	// Stopping a job that already failed is a clear client error, not a
	// hang on the dead edge.
	if st, b := w.rest.do(t, "POST", "/v2/recordings/end", map[string]any{"roomId": roomID}, nil); st/100 != 4 {
		t.Errorf("ending the failed recording: %d %s, want a 4xx", st, b)
	}
}
