package api_test

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/placement"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/shared/edgeapi"
)

const statsEdgeToken = "edge-token-for-stats-tests"

type statsRow struct {
	Time                    string
	RecvAudioPacketLost     int64
	RecvVideoPacketLost     int64
	SendAudioPacketLost     int64
	SendVideoPacketLost     int64
	AverageAudioRtt         float64
	AverageVideoRtt         float64
	AverageAudioJitter      float64
	AverageVideoJitter      float64
	AverageSendAudioBitrate float64
	AverageSendVideoBitrate float64
	AverageRecvAudioBitrate float64
	AverageRecvVideoBitrate float64
	QualityScore            struct{ Audio, Video float64 }
}

func near(got, want float64) bool { return math.Abs(got-want) < 1e-6*math.Max(1, math.Abs(want)) }

// TestStatsScoreEveryDirectionInUse: a room with one publisher, one
// subscriber and one participant that neither sends nor receives, reported
// the way an edge reports them (edgeapi.StatsBatch to the edge stats route,
// figures as the edge measured them over loopback with a 40 ms path). Each
// participant's round trip, jitter and score come from the directions it
// uses — the subscriber's from what it receives, not 0 because it sends
// nothing — and the session's figures average the participants they apply
// to: the idle participant drags neither the score nor the send bitrate
// down, and the send bitrate is the average sender's.
func TestStatsScoreEveryDirectionInUse(t *testing.T) {
	c := clustertest.New(t, 1, clustertest.Options{Configure: func(_ int, cfg *server.Config) {
		pc := placement.DefaultConfig()
		pc.EdgeToken = statsEdgeToken
		cfg.Plugins = append(cfg.Plugins, placement.Plugin(pc))
	}})
	room := createRoom(t, c, "stats-directions").RoomID
	sid := "5e55105e55105e55105e5501"
	n := 0
	id := func() string { n++; return fmt.Sprintf("5e55%020x", n) }
	t0 := time.Now().UTC().Truncate(time.Second)
	for _, p := range []string{"pub", "sub", "idle"} {
		apply(t, c, state.CmdParticipantJoin, state.ParticipantJoin{EventID: id(), RoomID: room, ParticipantID: p, Name: p, EdgeID: "edge-x", At: t0,
			NewSessionID: sid, NewDocID: id(), IDs: []string{id(), id()}})
	}

	pubVideo := edgeapi.TrackStats{Kind: "video", Bitrate: 195000, Packets: 1200, JitterMs: 0.5, RTTMs: 41, Width: 1280, Height: 720, FPS: 17}
	pubAudio := edgeapi.TrackStats{Kind: "audio", Bitrate: 32000, Packets: 2500, JitterMs: 0.3, RTTMs: 41}
	subVideo := edgeapi.TrackStats{Kind: "video", Bitrate: 190000, Packets: 1150, JitterMs: 0.7, RTTMs: 43, Width: 1280, Height: 720, FPS: 17}
	subAudio := edgeapi.TrackStats{Kind: "audio", Bitrate: 31000, Packets: 2490, JitterMs: 1.3, RTTMs: 43}
	for i := 0; i < 2; i++ {
		at := t0.Add(time.Duration(i+1) * 10 * time.Second)
		batch := edgeapi.StatsBatch{EdgeID: "edge-x", Stats: []edgeapi.ParticipantStats{
			{RoomID: room, ParticipantID: "pub", Time: at, Send: []edgeapi.TrackStats{pubVideo, pubAudio}, Recv: []edgeapi.TrackStats{}, Quality: 5},
			{RoomID: room, ParticipantID: "sub", Time: at, Send: []edgeapi.TrackStats{}, Recv: []edgeapi.TrackStats{subVideo, subAudio}, Quality: 5},
			{RoomID: room, ParticipantID: "idle", Time: at, Send: []edgeapi.TrackStats{}, Recv: []edgeapi.TrackStats{}, Quality: 5},
		}}
		if r := c.Do(0, "POST", "/internal/v1/edges/stats", "Bearer "+statsEdgeToken, batch); r.Status != 200 {
			t.Fatalf("edge stats: %d %s", r.Status, r.Body)
		}
	}

	participant := func(pid string) statsRow {
		t.Helper()
		var v struct{ Stats []statsRow }
		r := c.Do(0, "GET", "/v2/sessions/"+sid+"/participant/"+pid+"/stats", c.Token(), nil)
		if r.Status != 200 {
			t.Fatalf("%s stats: %d %s", pid, r.Status, r.Body)
		}
		r.JSON(t, &v)
		if len(v.Stats) != 2 {
			t.Fatalf("%s has %d stats entries, want 2: %s", pid, len(v.Stats), r.Body)
		}
		return v.Stats[1]
	}

	pub := participant("pub")
	if !near(pub.AverageAudioRtt, 41) || !near(pub.AverageVideoRtt, 41) {
		t.Errorf("publisher RTT audio %v video %v, want the 41 ms its edge measured", pub.AverageAudioRtt, pub.AverageVideoRtt)
	}
	if !near(pub.AverageAudioJitter, 0.3) || !near(pub.AverageVideoJitter, 0.5) {
		t.Errorf("publisher jitter audio %v video %v", pub.AverageAudioJitter, pub.AverageVideoJitter)
	}
	if pub.QualityScore.Audio < 4 || pub.QualityScore.Video < 4 {
		t.Errorf("publisher score %+v on a clean path", pub.QualityScore)
	}
	if pub.AverageSendVideoBitrate != 195000 || pub.AverageRecvVideoBitrate != 0 {
		t.Errorf("publisher bitrates send %v recv %v", pub.AverageSendVideoBitrate, pub.AverageRecvVideoBitrate)
	}

	sub := participant("sub")
	if !near(sub.AverageAudioRtt, 43) || !near(sub.AverageVideoRtt, 43) {
		t.Errorf("subscriber RTT audio %v video %v, want the 43 ms of its receiver reports", sub.AverageAudioRtt, sub.AverageVideoRtt)
	}
	if !near(sub.AverageAudioJitter, 1.3) || !near(sub.AverageVideoJitter, 0.7) {
		t.Errorf("subscriber jitter audio %v video %v, want its receiver reports' 1.3/0.7", sub.AverageAudioJitter, sub.AverageVideoJitter)
	}
	if sub.QualityScore.Audio < 4 || sub.QualityScore.Video < 4 {
		t.Errorf("subscriber score %+v: scored from what it receives, a clean path scores > 4", sub.QualityScore)
	}

	idle := participant("idle")
	if idle.QualityScore.Audio != 0 || idle.QualityScore.Video != 0 || idle.AverageAudioRtt != 0 || idle.AverageVideoJitter != 0 {
		t.Errorf("a participant without media has figures: %+v", idle)
	}

	var sess struct{ Stats []statsRow }
	r := c.Do(0, "GET", "/v2/sessions/"+sid+"/stats", c.Token(), nil)
	r.JSON(t, &sess)
	if len(sess.Stats) != 2 {
		t.Fatalf("session has %d stats entries, want 2: %s", len(sess.Stats), r.Body)
	}
	s := sess.Stats[1]
	if s.QualityScore.Audio < 4 || s.QualityScore.Video < 4 {
		t.Errorf("session score %+v: every participant with media has a clean path", s.QualityScore)
	}
	round2 := func(f float64) float64 { return math.Round(f*100) / 100 }
	if want := round2((pub.QualityScore.Audio + sub.QualityScore.Audio) / 2); s.QualityScore.Audio != want {
		t.Errorf("session audio score %v, want %v (publisher and subscriber; the idle participant has none)", s.QualityScore.Audio, want)
	}
	if want := round2((pub.QualityScore.Video + sub.QualityScore.Video) / 2); s.QualityScore.Video != want {
		t.Errorf("session video score %v, want %v", s.QualityScore.Video, want)
	}
	if !near(s.AverageAudioRtt, 42) || !near(s.AverageVideoRtt, 42) {
		t.Errorf("session RTT audio %v video %v, want 42 (mean of 41 and 43)", s.AverageAudioRtt, s.AverageVideoRtt)
	}
	if !near(s.AverageAudioJitter, 0.8) || !near(s.AverageVideoJitter, 0.6) {
		t.Errorf("session jitter audio %v video %v, want 0.8/0.6", s.AverageAudioJitter, s.AverageVideoJitter)
	}
	if s.AverageSendVideoBitrate != 195000 || s.AverageSendAudioBitrate != 32000 {
		t.Errorf("session send bitrates video %v audio %v, want the one sender's 195000/32000", s.AverageSendVideoBitrate, s.AverageSendAudioBitrate)
	}
	if s.AverageRecvVideoBitrate != 190000 || s.AverageRecvAudioBitrate != 31000 {
		t.Errorf("session receive bitrates video %v audio %v, want the one receiver's 190000/31000", s.AverageRecvVideoBitrate, s.AverageRecvAudioBitrate)
	}
}
