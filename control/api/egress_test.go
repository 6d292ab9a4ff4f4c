package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/egress"
	"github.com/meridian-video/meridian/control/placement"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/shared/edgeapi"
	"github.com/meridian-video/meridian/shared/egressapi"
)

const egressEdgeToken = "edge-token-for-egress-tests"

// egressNode is one control node with placement (edge registry, liveness)
// and egress (job routes, lost-edge check every checkEvery), fast liveness
// for the tests. Tests of the routes alone on jobs of edges that do not
// exist pass an hour, so the lost-edge check does not end their jobs.
func egressNode(t *testing.T, checkEvery time.Duration) *clustertest.Cluster {
	return newNode(t, func(cfg *server.Config) {
		pc := placement.DefaultConfig()
		pc.EdgeToken = egressEdgeToken
		pc.HeartbeatEvery, pc.DownAfter = 50*time.Millisecond, 300*time.Millisecond
		ec := egress.PluginConfig{Config: egress.Config{EdgeToken: egressEdgeToken, CheckEvery: checkEvery}}
		cfg.Plugins = append(cfg.Plugins, placement.Plugin(pc), egress.Plugin(ec))
	})
}

func jobCount(c *clustertest.Cluster) int {
	n := 0
	c.Node(0).Node().FSM().Read(func(s *state.Store) { n = len(s.ActiveJobs("", "")) })
	return n
}

func createRoom(t *testing.T, c *clustertest.Cluster, custom string) *state.Room {
	t.Helper()
	var v struct{ RoomID string }
	c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{"customRoomId": custom}).JSON(t, &v)
	var r *state.Room
	c.Node(0).Node().FSM().Read(func(s *state.Store) { r, _ = s.RoomByRoomID(v.RoomID) })
	if r == nil {
		t.Fatalf("room %s not in state", v.RoomID)
	}
	return r
}

// putJob records a job through the real write path, as the egress service
// does before it calls the edge.
func putJob(t *testing.T, c *clustertest.Cluster, j state.Job) {
	t.Helper()
	if j.CreatedAt.IsZero() {
		j.CreatedAt, j.UpdatedAt = time.Now().UTC(), time.Now().UTC()
	}
	if _, _, err := c.Node(0).Node().Apply(context.Background(), state.CmdCreateJob, state.CreateJob{Job: j}); err != nil {
		t.Fatal(err)
	}
}

func TestEgressRoutesRejectBadInput(t *testing.T) {
	c := egressNode(t, time.Hour)
	tok := c.Token()
	room := createRoom(t, c, "rec-room").RoomID
	body := func(extra string) string { return fmt.Sprintf(`{"roomId":%q%s}`, room, extra) }
	cases := []struct {
		name, method, path string
		body               any
		status             int
		msg                string
	}{
		{"recording without roomId", "POST", "/v2/recordings/start", `{}`, 400, "roomId"},
		{"recording roomId type", "POST", "/v2/recordings/start", `{"roomId":5}`, 400, "roomId"},
		{"recording unknown room", "POST", "/v2/recordings/start", `{"roomId":"zzzz-zzzz-zzzz"}`, 404, "not found"},
		{"recording layout type", "POST", "/v2/recordings/start", body(`,"config":{"layout":{"type":"DIAGONAL"}}`), 400, "config.layout.type"},
		{"recording gridSize over 4", "POST", "/v2/recordings/start", body(`,"config":{"layout":{"gridSize":9}}`), 400, "config.layout.gridSize"},
		{"recording gridSize type", "POST", "/v2/recordings/start", body(`,"config":{"layout":{"gridSize":"big"}}`), 400, "config.layout.gridSize"},
		{"recording quality", "POST", "/v2/recordings/start", body(`,"config":{"quality":"8k"}`), 400, "config.quality"},
		{"recording quality ultra", "POST", "/v2/recordings/start", body(`,"config":{"quality":"ultra"}`), 400, `field "config.quality" ultra is not supported: the largest output is high (1920x1080); supported values are low, med and high`},
		{"recording priority PIN", "POST", "/v2/recordings/start", body(`,"config":{"layout":{"priority":"pin"}}`), 400, `field "config.layout.priority" PIN is not supported: Meridian does not know which participants are pinned; the supported value is SPEAKER (the default)`},
		{"composite priority PIN", "POST", "/v2/recordings/composite/start", body(`,"config":{"layout":{"type":"SIDEBAR","priority":"PIN"}}`), 400, `field "config.layout.priority" PIN is not supported`},
		{"hls quality ultra", "POST", "/v2/hls/start", body(`,"config":{"quality":"ultra"}`), 400, `field "config.quality" ultra is not supported`},
		{"livestream priority PIN", "POST", "/v2/livestreams/start", body(`,"outputs":[{"url":"rtmp://x.example/live"}],"config":{"layout":{"priority":"PIN"}}`), 400, `field "config.layout.priority" PIN is not supported`},
		{"autoStart priority PIN", "POST", "/v2/rooms", `{"autoStartConfig":{"livestream":{"outputs":[{"url":"rtmp://x.example/live"}],"config":{"layout":{"priority":"PIN"}}}}}`, 400, `field "autoStartConfig.livestream.config.layout.priority" PIN is not supported`},
		{"autoStart quality ultra", "POST", "/v2/rooms", `{"autoStartConfig":{"recording":{"config":{"quality":"ultra"}}}}`, 400, `field "autoStartConfig.recording.config.quality" ultra is not supported`},
		{"recording orientation", "POST", "/v2/recordings/start", body(`,"config":{"orientation":"diagonal"}`), 400, "config.orientation"},
		{"recording theme", "POST", "/v2/recordings/start", body(`,"config":{"theme":"NEON"}`), 400, "config.theme"},
		{"recording mode", "POST", "/v2/recordings/start", body(`,"config":{"mode":"video-only"}`), 400, "config.mode"},
		{"recording config not an object", "POST", "/v2/recordings/start", body(`,"config":"grid"`), 400, "config"},
		{"recording fileFormat", "POST", "/v2/recordings/start", body(`,"fileFormat":"webm"`), 400, "fileFormat"},
		{"recording templateUrl", "POST", "/v2/recordings/start", body(`,"templateUrl":"https://layout.example"`), 400, "templateUrl"},
		{"recording transcription", "POST", "/v2/recordings/start", body(`,"transcription":{"enabled":true}`), 400, "transcription.enabled"},
		{"recording webhookUrl", "POST", "/v2/recordings/start", body(`,"webhookUrl":"ftp://hooks.example"`), 400, "webhookUrl"},
		{"recording awsDirPath", "POST", "/v2/recordings/start", body(`,"awsDirPath":"../../etc"`), 400, `field "awsDirPath"`},
		{"recording bucketDirPath", "POST", "/v2/recordings/start", body(`,"bucketDirPath":"../../etc"`), 400, `field "bucketDirPath"`},
		{"participant bucketDirPath", "POST", "/v2/recordings/participant/start", body(`,"participantId":"p1","bucketDirPath":"a/../../b"`), 400, `field "bucketDirPath"`},
		{"track bucketDirPath", "POST", "/v2/recordings/participant/track/start", body(`,"participantId":"p1","kind":"audio","bucketDirPath":"../x"`), 400, `field "bucketDirPath"`},
		{"merge dirPath", "POST", "/v2/recordings/participant/merge", `{"sessionId":"0123456789abcdef01234567","channel1":[{"participantId":"a"}],"dirPath":"../x"}`, 400, `field "dirPath"`},
		{"autoStart awsDirPath", "POST", "/v2/rooms", `{"autoStartConfig":{"hls":{"awsDirPath":"../x"}}}`, 400, `field "autoStartConfig.hls.awsDirPath"`},
		{"composite layout", "POST", "/v2/recordings/composite/start", body(`,"config":{"layout":{"priority":"LOUDEST"}}`), 400, "config.layout.priority"},
		{"recording without session", "POST", "/v2/recordings/start", body(``), 400, "no live session"},
		{"hls gridSize over 25", "POST", "/v2/hls/start", body(`,"config":{"layout":{"gridSize":26}}`), 400, "config.layout.gridSize"},
		{"hls window", "POST", "/v2/hls/start", body(`,"hls":{"windowSegments":1}`), 400, "hls.windowSegments"},
		{"hls gridSize 25 passes validation", "POST", "/v2/hls/start", body(`,"config":{"layout":{"gridSize":25}}`), 400, "no live session"},
		{"priority SPEAKER and quality high pass validation", "POST", "/v2/recordings/start", body(`,"config":{"layout":{"priority":"SPEAKER"},"quality":"high"}`), 400, "no live session"},
		{"hls summary", "POST", "/v2/hls/start", body(`,"summary":{"enabled":true}`), 400, "summary.enabled"},
		{"livestream without outputs", "POST", "/v2/livestreams/start", body(``), 400, "outputs"},
		{"livestream empty outputs", "POST", "/v2/livestreams/start", body(`,"outputs":[]`), 400, "outputs"},
		{"livestream output url", "POST", "/v2/livestreams/start", body(`,"outputs":[{"url":"http://x.example/live","streamKey":"k"}]`), 400, "outputs[0].url"},
		{"livestream stream key", "POST", "/v2/livestreams/start", body(`,"outputs":[{"url":"rtmp://x.example/live","streamKey":"a b"}]`), 400, "outputs[0].streamKey"},
		{"livestream gridSize", "POST", "/v2/livestreams/start", body(`,"outputs":[{"url":"rtmp://x.example/live"}],"config":{"layout":{"gridSize":5}}`), 400, "config.layout.gridSize"},
		{"participant without id", "POST", "/v2/recordings/participant/start", body(``), 400, "participantId"},
		{"participant fileFormat", "POST", "/v2/recordings/participant/start", body(`,"participantId":"p1","fileFormat":"m3u8"`), 400, "fileFormat"},
		{"participant not live", "POST", "/v2/recordings/participant/start", body(`,"participantId":"p1"`), 400, "no live session"},
		{"track without kind", "POST", "/v2/recordings/participant/track/start", body(`,"participantId":"p1"`), 400, "kind"},
		{"track kind", "POST", "/v2/recordings/participant/track/start", body(`,"participantId":"p1","kind":"smell"`), 400, "kind"},
		{"track mp3 video", "POST", "/v2/recordings/participant/track/start", body(`,"participantId":"p1","kind":"video","fileFormat":"mp3"`), 400, "fileFormat"},
		{"track stop without kind", "POST", "/v2/recordings/participant/track/stop", body(`,"participantId":"p1"`), 400, "kind"},
		{"participant stop nothing running", "POST", "/v2/recordings/participant/stop", body(`,"participantId":"p1"`), 404, "no recording"},
		{"merge without session", "POST", "/v2/recordings/participant/merge", `{"channel1":[{"participantId":"a"}]}`, 400, "sessionId"},
		{"merge session format", "POST", "/v2/recordings/participant/merge", `{"sessionId":"abc","channel1":[{"participantId":"a"}]}`, 400, "sessionId"},
		{"merge empty channels", "POST", "/v2/recordings/participant/merge", `{"sessionId":"0123456789abcdef01234567"}`, 400, "channel1"},
		{"merge unknown session", "POST", "/v2/recordings/participant/merge", `{"sessionId":"0123456789abcdef01234567","channel1":[{"participantId":"a"}]}`, 404, "not found"},
		{"merge channel type", "POST", "/v2/recordings/participant/merge", `{"sessionId":"0123456789abcdef01234567","channel1":{"participantId":"a"}}`, 400, "channel1"},
		{"stop nothing running", "POST", "/v2/recordings/end", body(``), 404, "no recording is running"},
		{"stop alias nothing running", "POST", "/v2/recordings/stop", body(``), 404, "no recording is running"},
		{"livestream stop nothing running", "POST", "/v2/livestreams/stop", body(``), 404, "no livestream"},
		{"hls stop nothing running", "POST", "/v2/hls/end", body(``), 404, "no HLS"},
		{"stop unknown id", "POST", "/v2/recordings/end", `{"id":"0123456789abcdef01234567"}`, 404, "not found"},
		{"stop bad id", "POST", "/v2/recordings/composite/stop", body(`,"recordingId":"nope"`), 400, "24"},
		{"capture format", "POST", "/v2/hls/capture", body(`,"format":"gif"`), 400, "format"},
		{"capture width", "POST", "/v2/hls/capture", body(`,"width":1`), 400, "width"},
		{"capture nothing running", "POST", "/v2/hls/capture", body(``), 404, "no HLS"},
		{"get bad id", "GET", "/v2/recordings/xyz", nil, 400, "24"},
		{"get unknown", "GET", "/v2/recordings/0123456789abcdef01234567", nil, 404, "not found"},
		{"get composite unknown", "GET", "/v2/recordings/composite/0123456789abcdef01234567", nil, 404, "not found"},
		{"delete unknown", "DELETE", "/v2/recordings/0123456789abcdef01234567", nil, 404, "not found"},
		{"participant get unknown", "GET", "/v2/recordings/participant/0123456789abcdef01234567", nil, 404, "not found"},
		{"track get unknown", "GET", "/v2/recordings/participant/track/0123456789abcdef01234567", nil, 404, "not found"},
		{"merge get not a uuid", "GET", "/v2/recordings/participant/merge/0123", nil, 400, "UUID"},
		{"merge list status", "GET", "/v2/recordings/participant/merge?status=paused", nil, 400, "status"},
		{"livestream get unknown", "GET", "/v2/livestreams/0123456789abcdef01234567", nil, 404, "not found"},
		{"hls get unknown", "GET", "/v2/hls/0123456789abcdef01234567", nil, 404, "not found"},
		{"hls delete unknown", "DELETE", "/v2/hls/0123456789abcdef01234567", nil, 404, "not found"},
		{"hls active none", "GET", "/v2/hls/" + room + "/active", nil, 404, "no HLS"},
		{"hls active unknown room", "GET", "/v2/hls/zzzz-zzzz-zzzz/active", nil, 404, "not found"},
		{"list bad session", "GET", "/v2/recordings?sessionId=xyz", nil, 400, "sessionId"},
		{"list unknown room", "GET", "/v2/livestreams?roomId=zzzz-zzzz-zzzz", nil, 404, "not found"},
		{"list bad page", "GET", "/v2/hls?page=0", nil, 400, "page"},
		{"autoStart layout", "POST", "/v2/rooms", `{"autoStartConfig":{"recording":{"config":{"layout":{"type":"X"}}}}}`, 400, "autoStartConfig.recording.config.layout.type"},
		{"autoStart hls grid", "POST", "/v2/rooms", `{"autoStartConfig":{"hls":{"config":{"layout":{"gridSize":30}}}}}`, 400, "autoStartConfig.hls.config.layout.gridSize"},
		{"autoStart livestream outputs", "POST", "/v2/rooms", `{"autoStartConfig":{"livestream":{"outputs":[]}}}`, 400, "autoStartConfig.livestream.outputs"},
		{"autoStart config type", "POST", "/v2/rooms", `{"autoStartConfig":{"recording":{"config":"grid"}}}`, 400, "recording.config"},
		{"autoStart webhookUrl", "POST", "/v2/rooms", `{"autoStartConfig":{"recording":{"webhookUrl":"ftp://x"}}}`, 400, "autoStartConfig.recording.webhookUrl"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, rooms := jobCount(c), roomCount(c)
			expectError(t, c.Do(0, tc.method, tc.path, tok, tc.body), tc.status, tc.msg)
			if after := jobCount(c); after != before {
				t.Fatalf("bad request changed state: %d jobs -> %d", before, after)
			}
			if after := roomCount(c); after != rooms {
				t.Fatalf("bad request changed state: %d rooms -> %d", rooms, after)
			}
		})
	}
	// What Meridian does not run is stored as given, next to a valid config.
	if r := c.Do(0, "POST", "/v2/rooms", tok, `{"autoStartConfig":{"recording":{"config":{"quality":"low"}},"hls":{},"custom":{"x":1}}}`); r.Status != 200 {
		t.Fatalf("valid autoStartConfig refused: %d %s", r.Status, r.Body)
	}
	// Nothing was recorded by any of them.
	var total int
	c.Node(0).Node().FSM().Read(func(s *state.Store) {
		for _, k := range []egressapi.Kind{egressapi.KindComposite, egressapi.KindParticipant, egressapi.KindTrack, egressapi.KindRTMP, egressapi.KindHLS, egressapi.KindMerge} {
			_, n := s.JobsPage(state.JobFilter{UserID: "", Kind: k}, state.Page{Limit: -1})
			total += n
		}
	})
	if total != 0 {
		t.Fatalf("%d jobs recorded by bad requests", total)
	}
}

func TestEgressListsScopingAndLifecycleErrors(t *testing.T) {
	c := egressNode(t, time.Hour)
	tok := c.Token()
	a, b := createRoom(t, c, "scope-a"), createRoom(t, c, "scope-b")
	const (
		recA  = "aaaaaaaaaaaaaaaaaaaaaa01"
		recB  = "aaaaaaaaaaaaaaaaaaaaaa02"
		hlsA  = "aaaaaaaaaaaaaaaaaaaaaa03"
		recA2 = "aaaaaaaaaaaaaaaaaaaaaa04"
	)
	putJob(t, c, state.Job{ID: recA, Kind: egressapi.KindComposite, UserID: a.UserID, APIKey: a.APIKey, RoomID: a.RoomID, SessionID: "111111111111111111111111", EdgeID: "edge-x"})
	putJob(t, c, state.Job{ID: recB, Kind: egressapi.KindComposite, UserID: b.UserID, APIKey: b.APIKey, RoomID: b.RoomID, SessionID: "222222222222222222222222", EdgeID: "edge-x"})
	putJob(t, c, state.Job{ID: hlsA, Kind: egressapi.KindHLS, UserID: a.UserID, APIKey: a.APIKey, RoomID: a.RoomID, SessionID: "111111111111111111111111", EdgeID: "edge-x",
		PlaybackURL: "http://edge.example/egress/hls/p/index.m3u8", LivestreamURL: "http://edge.example/egress/hls/p/live.m3u8"})

	type list struct {
		PageInfo struct{ Total int }
		Data     []struct {
			ID, RoomID, SessionID, Status string
			PlaybackHlsURL                string `json:"playbackHlsUrl"`
			LivestreamURL                 string `json:"livestreamUrl"`
			DownstreamURL                 string `json:"downstreamUrl"`
		}
	}
	ids := func(l list) []string {
		var out []string
		for _, d := range l.Data {
			out = append(out, d.ID)
		}
		return out
	}
	var all list
	c.Do(0, "GET", "/v2/recordings", tok, nil).JSON(t, &all)
	if all.PageInfo.Total != 2 || strings.Join(ids(all), ",") != recB+","+recA {
		t.Fatalf("project list (newest first): %+v", all)
	}
	var comp list
	c.Do(0, "GET", "/v2/recordings/composite?roomId=scope-a", tok, nil).JSON(t, &comp)
	if comp.PageInfo.Total != 1 || comp.Data[0].ID != recA || comp.Data[0].Status != "starting" {
		t.Fatalf("composite list by customRoomId: %+v", comp)
	}
	var page2 list
	c.Do(0, "GET", "/v2/recordings?perPage=1&page=2", tok, nil).JSON(t, &page2)
	if page2.PageInfo.Total != 2 || len(page2.Data) != 1 || page2.Data[0].ID != recA {
		t.Fatalf("second page: %+v", page2)
	}

	// A token scoped to room A sees A's jobs only.
	scoped := c.Token(func(o *auth.MintOptions) { o.RoomID = a.RoomID })
	var mine list
	c.Do(0, "GET", "/v2/recordings", scoped, nil).JSON(t, &mine)
	if mine.PageInfo.Total != 1 || mine.Data[0].ID != recA {
		t.Fatalf("scoped list: %+v", mine)
	}
	expectError(t, c.Do(0, "GET", "/v2/recordings?roomId="+b.RoomID, scoped, nil), 403, "scoped")
	expectError(t, c.Do(0, "GET", "/v2/recordings/"+recB, scoped, nil), 403, "scoped")
	expectError(t, c.Do(0, "POST", "/v2/recordings/end", scoped, map[string]string{"id": recB}), 403, "scoped")
	expectError(t, c.Do(0, "POST", "/v2/recordings/start", scoped, map[string]string{"roomId": b.RoomID}), 403, "scoped")
	if r := c.Do(0, "GET", "/v2/recordings/"+recA, scoped, nil); r.Status != 200 {
		t.Fatalf("scoped token reading its room's job: %d %s", r.Status, r.Body)
	}
	// Another kind's route does not find a job.
	expectError(t, c.Do(0, "GET", "/v2/hls/"+recA, tok, nil), 404, "not found")
	expectError(t, c.Do(0, "GET", "/v2/recordings/"+hlsA, tok, nil), 404, "not found")

	// HLS: URLs under every documented name, active wrapped in {code, data}.
	var h list
	c.Do(0, "GET", "/v2/hls?roomId="+a.RoomID, tok, nil).JSON(t, &h)
	if len(h.Data) != 1 || h.Data[0].PlaybackHlsURL != "http://edge.example/egress/hls/p/index.m3u8" || h.Data[0].DownstreamURL != h.Data[0].PlaybackHlsURL ||
		h.Data[0].LivestreamURL != "http://edge.example/egress/hls/p/live.m3u8" {
		t.Fatalf("hls list: %+v", h)
	}
	var active struct {
		Code int
		Data struct{ ID string }
	}
	c.Do(0, "GET", "/v2/hls/scope-a/active", tok, nil).JSON(t, &active)
	if active.Code != 200 || active.Data.ID != hlsA {
		t.Fatalf("active hls: %+v", active)
	}

	// A running job cannot be deleted; a second recording in the room conflicts.
	expectError(t, c.Do(0, "DELETE", "/v2/recordings/"+recA, tok, nil), 409, "stop it")
	if _, _, err := c.Node(0).Node().Apply(context.Background(), state.CmdCreateJob, state.CreateJob{Job: state.Job{ID: recA2, Kind: egressapi.KindComposite, UserID: a.UserID, RoomID: a.RoomID, EdgeID: "edge-x"}}); err == nil {
		t.Fatal("a second recording in the same room was recorded")
	}
	// The edge is unknown, so stopping cannot reach it: a clear 503.
	expectError(t, c.Do(0, "POST", "/v2/recordings/end", tok, map[string]string{"roomId": a.RoomID}), 503, "not reachable")

	// Stopping: a second stop is a conflict, not another call to the edge.
	if _, _, err := c.Node(0).Node().Apply(context.Background(), state.CmdJobStatus, state.JobStatus{EdgeID: "edge-x",
		Status: egressapi.Status{ID: recA, Kind: egressapi.KindComposite, State: egressapi.StateStopping, Seq: 1}, At: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	expectError(t, c.Do(0, "POST", "/v2/recordings/end", tok, map[string]string{"roomId": a.RoomID}), 409, "already stopping")
	// Once ended: stop answers 409, delete works, the job is gone from reads.
	if _, _, err := c.Node(0).Node().Apply(context.Background(), state.CmdFailJobs, state.FailJobs{IDs: []string{recA}, Reason: "test", At: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	expectError(t, c.Do(0, "POST", "/v2/recordings/end", tok, map[string]string{"roomId": a.RoomID, "id": recA}), 409, "already ended")
	expectError(t, c.Do(0, "POST", "/v2/recordings/end", tok, map[string]string{"roomId": a.RoomID}), 404, "no recording is running")
	r := c.Do(0, "DELETE", "/v2/recordings/"+recA, tok, nil)
	var msg string
	if r.Status != 200 || json.Unmarshal(r.Body, &msg) != nil || msg != "Room recording deleted successfully" {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	expectError(t, c.Do(0, "GET", "/v2/recordings/"+recA, tok, nil), 404, "not found")
	expectError(t, c.Do(0, "DELETE", "/v2/recordings/"+recA, tok, nil), 404, "not found")
}

// TestEgressJobsOfALostEdgeFail: an edge that stops sending heartbeats is
// marked down by placement; its running job becomes failed with the reason
// and the failed webhook is in the outbox.
func TestEgressJobsOfALostEdgeFail(t *testing.T) {
	c := egressNode(t, 50*time.Millisecond)
	room := createRoom(t, c, "lost-edge")
	reg := edgeapi.Register{EdgeID: "edge-lost", Region: "eu-west", SignalURL: "ws://127.0.0.1:1/rtc", InternalURL: "http://127.0.0.1:1", Capacity: 10}
	if r := c.Do(0, "POST", "/internal/v1/edges/register", "Bearer "+egressEdgeToken, reg); r.Status != 200 {
		t.Fatalf("register: %d %s", r.Status, r.Body)
	}
	const id = "bbbbbbbbbbbbbbbbbbbbbb01"
	putJob(t, c, state.Job{ID: id, Kind: egressapi.KindRTMP, UserID: room.UserID, APIKey: room.APIKey, RoomID: room.RoomID, SessionID: "111111111111111111111111", EdgeID: "edge-lost",
		WebhookURL: "https://job-hooks.example/h"})
	clustertest.Eventually(t, 10*time.Second, func() string {
		var j *state.Job
		c.Node(0).Node().FSM().Read(func(s *state.Store) { j, _ = s.JobByID(id) })
		if j.State != egressapi.StateFailed {
			return "job is " + string(j.State)
		}
		if j.Error != "edge edge-lost lost" {
			return "reason " + j.Error
		}
		return ""
	})
	var got []string
	c.Node(0).Node().FSM().Read(func(s *state.Store) {
		for _, d := range s.PendingDeliveries(0) {
			if d.EventType == "livestream-failed" {
				got = append(got, d.URL+" "+string(d.Body))
			}
		}
	})
	want := `https://job-hooks.example/h {"webhookType":"livestream-failed","data":{"meetingId":"` + room.RoomID + `","sessionId":"111111111111111111111111"}}`
	if len(got) != 1 || got[0] != want {
		t.Fatalf("failed webhooks %q, want %q", got, want)
	}
	var v struct {
		Status, Error string
		Webhook       struct {
			TotalCount, SuccessCount int
			Data                     []struct {
				Type    string
				Success bool
			}
		}
	}
	c.Do(0, "GET", "/v2/livestreams/"+id, c.Token(), nil).JSON(t, &v)
	if v.Status != "failed" || v.Error != "edge edge-lost lost" {
		t.Fatalf("livestream after edge loss: %+v", v)
	}
	// §11.5: the job's delivery summary (this node runs no dispatcher: pending).
	if v.Webhook.TotalCount != 1 || v.Webhook.SuccessCount != 0 || len(v.Webhook.Data) != 1 || v.Webhook.Data[0].Type != "livestream-failed" || v.Webhook.Data[0].Success {
		t.Fatalf("webhook summary %+v", v.Webhook)
	}
}

// TestEgressJobsVisibleOnEveryNode: a job is replicated state — recorded
// through one node, changed through another, read through every node.
func TestEgressJobsVisibleOnEveryNode(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{Configure: func(i int, cfg *server.Config) {
		pc := placement.DefaultConfig()
		pc.EdgeToken = egressEdgeToken
		cfg.Plugins = append(cfg.Plugins, placement.Plugin(pc), egress.Plugin(egress.PluginConfig{Config: egress.Config{EdgeToken: egressEdgeToken, CheckEvery: time.Hour}}))
	}})
	room := createRoom(t, c, "replicated")
	const id = "cccccccccccccccccccccc01"
	follower := c.Followers()[0]
	if _, _, err := c.Node(follower).Node().Apply(context.Background(), state.CmdCreateJob, state.CreateJob{Job: state.Job{ID: id, Kind: egressapi.KindHLS,
		UserID: room.UserID, APIKey: room.APIKey, RoomID: room.RoomID, SessionID: "111111111111111111111111", EdgeID: "edge-x", CreatedAt: time.Now().UTC()}}); err != nil {
		t.Fatal(err)
	}
	st := egressapi.Status{ID: id, Kind: egressapi.KindHLS, State: egressapi.StateRunning, Seq: 1, StartedAt: time.Now().UTC(), Duration: 12.5}
	if _, _, err := c.Node(c.Leader()).Node().Apply(context.Background(), state.CmdJobStatus, state.JobStatus{EdgeID: "edge-x", Status: st, At: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		var v struct {
			ID, Status string
			Duration   float64
		}
		c.Do(i, "GET", "/v2/hls/"+id+"?consistent=true", c.Token(), nil).JSON(t, &v)
		if v.ID != id || v.Status != "running" || v.Duration != 12.5 {
			t.Fatalf("node %d: %+v", i, v)
		}
		var l struct{ PageInfo struct{ Total int } }
		c.Do(i, "GET", "/v2/hls?consistent=true&roomId=replicated", c.Token(), nil).JSON(t, &l)
		if l.PageInfo.Total != 1 {
			t.Fatalf("node %d lists %d HLS jobs", i, l.PageInfo.Total)
		}
	}
}

// TestEgressStartInAnEmptySession: a session kept open by autoCloseConfig
// after everyone left has nothing to record: a clear 400, nothing recorded.
func TestEgressStartInAnEmptySession(t *testing.T) {
	c := egressNode(t, time.Hour)
	var v struct{ RoomID string }
	c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{"customRoomId": "emptied", "autoCloseConfig": map[string]any{"type": "session-ends", "duration": 600}}).JSON(t, &v)
	now := time.Now().UTC()
	for _, cmd := range []struct {
		t    state.CommandType
		body any
	}{
		{state.CmdParticipantJoin, state.ParticipantJoin{EventID: "e1", RoomID: v.RoomID, ParticipantID: "p1", Name: "P", EdgeID: "edge-x", At: now,
			NewSessionID: "dddddddddddddddddddddd01", NewDocID: "dddddddddddddddddddddd02", IDs: []string{"dddddddddddddddddddddd03", "dddddddddddddddddddddd04"}}},
		{state.CmdParticipantLeave, state.ParticipantLeave{EventID: "e2", RoomID: v.RoomID, ParticipantID: "p1", EdgeID: "edge-x", At: now.Add(time.Second),
			IDs: []string{"dddddddddddddddddddddd05", "dddddddddddddddddddddd06", "dddddddddddddddddddddd07"}}},
	} {
		if _, _, err := c.Node(0).Node().Apply(context.Background(), cmd.t, cmd.body); err != nil {
			t.Fatal(err)
		}
	}
	var ongoing bool
	c.Node(0).Node().FSM().Read(func(s *state.Store) { r, _ := s.RoomByRoomID(v.RoomID); _, ongoing = s.OngoingSession(r.ID) })
	if !ongoing {
		t.Fatal("the emptied session ended; the test needs it open")
	}
	for _, path := range []string{"/v2/recordings/start", "/v2/hls/start"} {
		expectError(t, c.Do(0, "POST", path, c.Token(), map[string]string{"roomId": v.RoomID}), 400, "no participants")
	}
	if n := jobCount(c); n != 0 {
		t.Fatalf("%d jobs recorded", n)
	}
}

// TestEgressViewsShowWhatRaftHolds: every job view carries the edge that
// runs the job and, where the job has them, its duration and size as Raft
// holds them — for a running job too, not only inside `file` once stopped
// — next to the documented fields, which keep their values.
func TestEgressViewsShowWhatRaftHolds(t *testing.T) {
	c := egressNode(t, time.Hour)
	room := createRoom(t, c, "views")
	const (
		sess  = "eeeeeeeeeeeeeeeeeeeeee00"
		comp  = "eeeeeeeeeeeeeeeeeeeeee01"
		part  = "eeeeeeeeeeeeeeeeeeeeee02"
		track = "eeeeeeeeeeeeeeeeeeeeee03"
		live  = "eeeeeeeeeeeeeeeeeeeeee04"
		hls   = "eeeeeeeeeeeeeeeeeeeeee05"
		merge = "eeeeeeee-eeee-4eee-8eee-eeeeeeeeee06"
	)
	jobs := []state.Job{
		{ID: comp, Kind: egressapi.KindComposite, EdgeID: "edge-comp"},
		{ID: part, Kind: egressapi.KindParticipant, ParticipantID: "p1", FileFormat: "webm", EdgeID: "edge-part"},
		{ID: track, Kind: egressapi.KindTrack, ParticipantID: "p1", TrackKind: "audio", FileFormat: "webm", EdgeID: "edge-track"},
		{ID: live, Kind: egressapi.KindRTMP, Outputs: []egressapi.RTMPOutput{{URL: "rtmp://x.example/live", StreamKey: "k"}}, EdgeID: "edge-live"},
		{ID: hls, Kind: egressapi.KindHLS, EdgeID: "edge-hls"},
		{ID: merge, Kind: egressapi.KindMerge, EdgeID: "edge-merge"},
	}
	for _, j := range jobs {
		j.UserID, j.APIKey, j.RoomID, j.SessionID = room.UserID, room.APIKey, room.RoomID, sess
		putJob(t, c, j)
	}
	report := func(edge string, st egressapi.Status) {
		t.Helper()
		if _, _, err := c.Node(0).Node().Apply(context.Background(), state.CmdJobStatus, state.JobStatus{EdgeID: edge, Status: st, At: time.Now().UTC()}); err != nil {
			t.Fatal(err)
		}
	}
	started := time.Now().UTC().Add(-time.Minute)
	// Running jobs, as their edges last reported them.
	report("edge-comp", egressapi.Status{ID: comp, Kind: egressapi.KindComposite, State: egressapi.StateRunning, Seq: 1, StartedAt: started, Duration: 41.5, Size: 3_000_000})
	report("edge-part", egressapi.Status{ID: part, Kind: egressapi.KindParticipant, State: egressapi.StateRunning, Seq: 1, StartedAt: started, Duration: 12.25, Size: 250_000})
	report("edge-live", egressapi.Status{ID: live, Kind: egressapi.KindRTMP, State: egressapi.StateRunning, Seq: 1, StartedAt: started, Duration: 33.75})
	report("edge-hls", egressapi.Status{ID: hls, Kind: egressapi.KindHLS, State: egressapi.StateRunning, Seq: 1, StartedAt: started, Duration: 7.5})

	get := func(path string) map[string]any {
		t.Helper()
		var v map[string]any
		c.Do(0, "GET", path, c.Token(), nil).JSON(t, &v)
		return v
	}
	pick := func(v map[string]any, keys ...string) map[string]any {
		out := map[string]any{}
		for _, k := range keys {
			if x, ok := v[k]; ok {
				out[k] = x
			}
		}
		return out
	}
	expect := func(what string, got, want map[string]any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: got %v, want %v", what, got, want)
		}
	}
	expect("running composite", pick(get("/v2/recordings/"+comp), "id", "status", "edgeId", "duration", "size", "file"),
		map[string]any{"id": comp, "status": "running", "edgeId": "edge-comp", "duration": 41.5, "size": 3e6})
	expect("running participant recording", pick(get("/v2/recordings/participant/"+part), "id", "kind", "mode", "status", "edgeId", "duration", "size", "files"),
		map[string]any{"id": part, "kind": "audio_video", "mode": "participant", "status": "running", "edgeId": "edge-part", "duration": 12.25, "size": 250000.0, "files": []any{}})
	expect("starting track recording", pick(get("/v2/recordings/participant/track/"+track), "id", "kind", "mode", "status", "edgeId", "duration", "size"),
		map[string]any{"id": track, "kind": "audio", "mode": "track", "status": "starting", "edgeId": "edge-track", "duration": 0.0, "size": 0.0})
	expect("running livestream", pick(get("/v2/livestreams/"+live), "id", "status", "edgeId", "duration", "size", "outputs"),
		map[string]any{"id": live, "status": "running", "edgeId": "edge-live", "duration": 33.75,
			"outputs": []any{map[string]any{"streamKey": "k", "url": "rtmp://x.example/live"}}})
	expect("running hls", pick(get("/v2/hls/"+hls), "id", "status", "edgeId", "duration"),
		map[string]any{"id": hls, "status": "running", "edgeId": "edge-hls", "duration": 7.5})
	expect("running merge", pick(get("/v2/recordings/participant/merge/"+merge), "id", "status", "edgeId"),
		map[string]any{"id": merge, "status": "running", "edgeId": "edge-merge"})

	// Once stopped, the top-level totals are the final ones and the
	// documented file carries the same numbers.
	stopped := time.Now().UTC()
	report("edge-comp", egressapi.Status{ID: comp, Kind: egressapi.KindComposite, State: egressapi.StateStopped, Seq: 2, StartedAt: started, StoppedAt: stopped, Duration: 55.055, Size: 17023255,
		Files: []egressapi.File{{Storage: "local", Key: "recordings/" + comp + ".mp4", Size: 17023255, Duration: 55.055, Width: 1280, Height: 720, Format: "mov,mp4,m4a,3gp,3g2,mj2", Type: "video"}}})
	report("edge-live", egressapi.Status{ID: live, Kind: egressapi.KindRTMP, State: egressapi.StateStopped, Seq: 2, StartedAt: started, StoppedAt: stopped, Duration: 60.5})
	v := get("/v2/recordings/" + comp)
	expect("stopped composite", pick(v, "status", "edgeId", "duration", "size", "fileId"),
		map[string]any{"status": "stopped", "edgeId": "edge-comp", "duration": 55.055, "size": 17023255.0, "fileId": comp})
	file, _ := v["file"].(map[string]any)
	expect("stopped composite file", pick(file, "size", "meta", "type"),
		map[string]any{"size": 17023255.0, "type": "video", "meta": map[string]any{"duration": 55.055, "format": "mov,mp4,m4a,3gp,3g2,mj2", "resolution": map[string]any{"width": 1280.0, "height": 720.0}}})
	expect("stopped livestream", pick(get("/v2/livestreams/"+live), "status", "edgeId", "duration"),
		map[string]any{"status": "stopped", "edgeId": "edge-live", "duration": 60.5})
	// Lists carry the same fields.
	var l struct{ Data []map[string]any }
	c.Do(0, "GET", "/v2/livestreams?roomId=views", c.Token(), nil).JSON(t, &l)
	if len(l.Data) != 1 {
		t.Fatalf("livestream list: %+v", l)
	}
	expect("livestream list item", pick(l.Data[0], "id", "edgeId", "duration"), map[string]any{"id": live, "edgeId": "edge-live", "duration": 60.5})
}
