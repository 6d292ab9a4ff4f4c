package e2e

import (
	"bytes"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestAutoStartConfigStartsHLSAndLivestreamWithTheSession: a room created
// with autoStartConfig.hls (recording enabled) and autoStartConfig.livestream
// has neither job before anyone joins; when the first participant's
// session begins, the leader's job loop starts both on the edge holding the
// room: the HLS stream becomes playable (webhook, playlist served) with the
// asked config, and ending it stores the MP4 asked by recording.enabled;
// the livestream, whose destination refuses connections, ends failed with
// livestream-failed. One job of each kind per session.
func TestAutoStartConfigStartsHLSAndLivestreamWithTheSession(t *testing.T) {
	w := startRecWorld(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := fmt.Sprintf("rtmp://%s/live", l.Addr())
	l.Close() // nobody listens there: the RTMP connection is refused
	roomID := w.room(t, "auto-hls", []string{"hls-*", "livestream-*"}, map[string]any{"autoStartConfig": map[string]any{
		"hls":        map[string]any{"config": map[string]any{"quality": "low", "orientation": "portrait"}, "recording": map[string]any{"enabled": true}},
		"livestream": map[string]any{"outputs": []map[string]any{{"url": dead, "streamKey": "auto-key"}}, "config": map[string]any{"quality": "low"}},
	}})
	type hlsItem struct {
		ID, Status, SessionID, RoomID, EdgeID string
		PlaybackHlsURL, LivestreamURL         string
		Quality, Mode, Orientation            string
		Duration                              float64
		File                                  *struct {
			FileURL string
			Size    int64
			Meta    struct {
				Format     string
				Resolution struct{ Width, Height int }
			}
		}
	}
	var hls struct {
		PageInfo struct{ Total int }
		Data     []hlsItem
	}
	var live struct {
		PageInfo struct{ Total int }
		Data     []struct{ ID, Status, SessionID, Error, EdgeID string }
	}
	if st, b := w.rest.do(t, "GET", "/v2/hls?roomId="+roomID, nil, &hls); st != 200 || hls.PageInfo.Total != 0 {
		t.Fatalf("HLS before anyone joined: %d %s", st, b)
	}
	if st, b := w.rest.do(t, "GET", "/v2/livestreams?roomId="+roomID, nil, &live); st != 200 || live.PageInfo.Total != 0 {
		t.Fatalf("livestream before anyone joined: %d %s", st, b)
	}

	w.publish(t, roomID, "gina")
	sessionID := w.session(t, roomID, 1)

	recWait(t, "auto-started HLS running", 30*time.Second, func() (bool, string) {
		_, b := w.rest.do(t, "GET", "/v2/hls?roomId="+roomID, nil, &hls)
		return len(hls.Data) == 1 && hls.Data[0].Status == "running" && hls.Data[0].SessionID == sessionID, string(b)
	})
	h := hls.Data[0]
	// The stored config is the normalized one, as for a job started through the API.
	if h.Quality != "low" || h.Orientation != "portrait" || h.Mode != "video-and-audio" || h.EdgeID != "rec-edge" || h.RoomID != roomID {
		t.Fatalf("auto-started HLS: %+v", h)
	}
	recWait(t, "hls-playable", 30*time.Second, func() (bool, string) {
		e, ok := w.hook("hls-playable")
		return ok && e.field("sessionId") == sessionID, fmt.Sprint(w.hookTypes("hls-"))
	})
	if e, _ := w.hook("hls-playable"); e.field("playbackHlsUrl") != h.PlaybackHlsURL || e.field("livestreamUrl") != h.LivestreamURL || e.field("meetingId") != roomID {
		t.Fatalf("hls-playable payload %v, want the job's URLs %s %s", e.Data, h.PlaybackHlsURL, h.LivestreamURL)
	}
	for _, u := range []string{h.PlaybackHlsURL, h.LivestreamURL} {
		if _, body := recDownload(t, u, "list.m3u8"); !bytes.HasPrefix(body, []byte("#EXTM3U")) || !bytes.Contains(body, []byte("#EXT-X-STREAM-INF")) && !bytes.Contains(body, []byte("#EXTINF")) {
			t.Fatalf("%s is not a playlist with content: %s", u, body)
		}
	}

	// The livestream was started with the same session and failed on its own.
	recWait(t, "auto-started livestream failed", 30*time.Second, func() (bool, string) {
		_, b := w.rest.do(t, "GET", "/v2/livestreams?roomId="+roomID, nil, &live)
		return len(live.Data) == 1 && live.Data[0].Status == "failed", string(b)
	})
	if d := live.Data[0]; d.SessionID != sessionID || !strings.Contains(d.Error, "refused") || d.EdgeID != "rec-edge" {
		t.Fatalf("auto-started livestream: %+v", d)
	}
	recWait(t, "livestream-failed", 30*time.Second, func() (bool, string) {
		e, ok := w.hook("livestream-failed")
		return ok && e.field("sessionId") == sessionID, fmt.Sprint(w.hookTypes("livestream-"))
	})

	// Ending the HLS stream stores its recording (recording.enabled).
	var msg string
	if st, b := w.rest.do(t, "POST", "/v2/hls/end", map[string]any{"roomId": roomID}, &msg); st != 200 || msg != "HLS ended successfully" {
		t.Fatalf("hls end: %d %s", st, b)
	}
	want := []string{"hls-starting", "hls-started", "hls-playable", "hls-stopping", "hls-stopped"}
	recWait(t, "hls webhooks", 60*time.Second, func() (bool, string) {
		got := w.hookTypes("hls-")
		return slices.Equal(got, want), fmt.Sprint(got)
	})
	var done hlsItem
	if st, b := w.rest.do(t, "GET", "/v2/hls/"+h.ID, nil, &done); st != 200 || done.Status != "stopped" || done.File == nil || done.Duration <= 0 {
		t.Fatalf("hls after end: %d %s", st, b)
	}
	path, body := recDownload(t, done.File.FileURL, "auto-hls.mp4")
	if int64(len(body)) != done.File.Size {
		t.Fatalf("downloaded %d bytes, the view says %d", len(body), done.File.Size)
	}
	// Portrait low = 480×854.
	if done.File.Meta.Resolution.Width != 480 || done.File.Meta.Resolution.Height != 854 {
		t.Fatalf("HLS recording resolution %+v, want 480x854", done.File.Meta.Resolution)
	}
	if ch := recChannels(t, path); ch == "" {
		t.Fatalf("HLS recording %s has no audio stream", path)
	}

	// One auto-started job of each kind for the session, however often the loop looked.
	if _, b := w.rest.do(t, "GET", "/v2/hls?roomId="+roomID, nil, &hls); hls.PageInfo.Total != 1 {
		t.Fatalf("HLS jobs of the auto room: %s", b)
	}
	if _, b := w.rest.do(t, "GET", "/v2/livestreams?roomId="+roomID, nil, &live); live.PageInfo.Total != 1 {
		t.Fatalf("livestreams of the auto room: %s", b)
	}
}
