package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"
)

// TestEgressStopByRoomReplayedWithIdempotencyKey: a recording stopped by
// roomId (a control process, an edge process recording a real publisher),
// then the same request sent again with its Idempotency-Key — as a client
// does when the first answer was lost. The repeat must get the first
// answer, not what the handler would say now: the room has no running
// recording any more, so running it again answers 404 (or 409).
func TestEgressStopByRoomReplayedWithIdempotencyKey(t *testing.T) {
	w := startRecWorld(t)
	roomID := w.room(t, "ik-stop", []string{"recording-*"}, nil)
	w.publish(t, roomID, "alice")
	w.session(t, roomID, 1)
	if st, b := w.rest.do(t, "POST", "/v2/recordings/start", map[string]any{"roomId": roomID, "config": map[string]any{"quality": "low"}}, nil); st != 200 {
		t.Fatalf("start: %d %s", st, b)
	}
	var id string
	recWait(t, "recording running", 30*time.Second, func() (bool, string) {
		var l struct{ Data []struct{ ID, Status string } }
		st, b := w.rest.do(t, "GET", "/v2/recordings?roomId="+roomID, nil, &l)
		if st != 200 || len(l.Data) != 1 || l.Data[0].Status != "running" {
			return false, string(b)
		}
		id = l.Data[0].ID
		return true, ""
	})
	stop := func() (int, []byte, http.Header) {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"roomId": roomID})
		req, _ := http.NewRequest("POST", w.rest.base+"/v2/recordings/stop", bytes.NewReader(body))
		req.Header.Set("Authorization", w.rest.token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "stop-"+roomID)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b, resp.Header
	}
	st, first, _ := stop()
	if st != 200 || !bytes.Contains(first, []byte("Recording ended successfully")) {
		t.Fatalf("stop by roomId: %d %s", st, first)
	}
	// Once the job has stopped on the edge too, the repeat still answers
	// as the first did.
	recWait(t, "recording stopped", 60*time.Second, func() (bool, string) {
		var rec struct{ Status string }
		st, b := w.rest.do(t, "GET", "/v2/recordings/"+id, nil, &rec)
		return st == 200 && rec.Status == "stopped", string(b)
	})
	st, again, h := stop()
	if st != 200 || !bytes.Equal(again, first) || h.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("stop repeated with its Idempotency-Key: %d %s (replayed %q), want the first answer %s", st, again, h.Get("Idempotent-Replayed"), first)
	}
	// Without the key it is a new request: nothing is running.
	if st, b := w.rest.do(t, "POST", "/v2/recordings/stop", map[string]any{"roomId": roomID}, nil); st/100 != 4 {
		t.Fatalf("stop without a key after the recording ended: %d %s, want a 4xx", st, b)
	}
}
