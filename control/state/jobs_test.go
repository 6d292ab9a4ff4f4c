package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/meridian-video/meridian/shared/egressapi"
)

const (
	jobA = "aaaaaaaaaaaaaaaaaaaaaa01"
	jobB = "aaaaaaaaaaaaaaaaaaaaaa02"
)

// jobRoom creates a room with a webhook for every recording event and a
// live session, and returns its session id.
func jobRoom(t *testing.T, f *testFSM) string {
	t.Helper()
	if _, err := f.apply(CmdCreateRoom, CreateRoom{Room: Room{ID: "r00000000000000000000001", RoomID: "abcd-efgh-ijkl", UserID: "u1", APIKey: "k1", CreatedAt: t0, UpdatedAt: t0,
		Webhook: &RoomWebhook{EndPoint: "https://hooks.example/x", Events: []string{"recording-*", "hls-*", "livestream-*"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.apply(CmdParticipantJoin, ParticipantJoin{EventID: "ev1", RoomID: "abcd-efgh-ijkl", ParticipantID: "p1", Name: "One", EdgeID: "edge1", At: t0,
		NewSessionID: "111111111111111111111111", NewDocID: "d00000000000000000000001", IDs: []string{"i1", "i2"}}); err != nil {
		t.Fatal(err)
	}
	return "111111111111111111111111"
}

func createJob(t *testing.T, f *testFSM, j Job) {
	t.Helper()
	if _, err := f.apply(CmdCreateJob, CreateJob{Job: j}); err != nil {
		t.Fatal(err)
	}
}

func status(id string, seq uint64, st egressapi.State) egressapi.Status {
	return egressapi.Status{ID: id, Kind: egressapi.KindComposite, RoomID: "abcd-efgh-ijkl", State: st, Seq: seq, StartedAt: t0.Add(time.Second)}
}

// jobEvents lists the job webhooks in the outbox, in enqueue order.
func jobEvents(f *testFSM, prefix string) []string {
	var out []string
	f.Read(func(s *Store) {
		for _, d := range s.PendingDeliveries(0) {
			if len(d.EventID) > len(prefix) && d.EventID[:len(prefix)] == prefix {
				out = append(out, d.EventType)
			}
		}
	})
	return out
}

func TestJobLifecycleWebhooksAndSeqOrder(t *testing.T) {
	f := newTestFSM(t)
	sid := jobRoom(t, f)
	createJob(t, f, Job{ID: jobA, Kind: egressapi.KindComposite, UserID: "u1", APIKey: "k1", RoomID: "abcd-efgh-ijkl", SessionID: sid, EdgeID: "edge1", CreatedAt: t0})
	if ev := jobEvents(f, jobA); len(ev) != 0 {
		t.Fatalf("creating a job sent %v", ev)
	}
	apply := func(st egressapi.Status, urls ...string) *Job {
		t.Helper()
		v, err := f.apply(CmdJobStatus, JobStatus{EdgeID: "edge1", Status: st, FileURLs: urls, At: t0.Add(time.Duration(st.Seq) * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		return v.(*Job)
	}
	if j := apply(status(jobA, 2, egressapi.StateRunning)); j.State != egressapi.StateRunning || j.Seq != 2 {
		t.Fatalf("running: %+v", j)
	}
	// A stale report (seq 1 after 2) changes nothing and sends nothing.
	if j := apply(status(jobA, 1, egressapi.StateStarting)); j.State != egressapi.StateRunning || j.Seq != 2 {
		t.Fatalf("stale report applied: %+v", j)
	}
	// The same report again is not newer either.
	apply(status(jobA, 2, egressapi.StateRunning))
	if got, want := jobEvents(f, jobA), []string{"recording-starting", "recording-started"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	// A report from another edge is ignored.
	if v, _ := f.apply(CmdJobStatus, JobStatus{EdgeID: "edge2", Status: status(jobA, 9, egressapi.StateFailed), At: t0}); v.(*Job).State != egressapi.StateRunning {
		t.Fatal("another edge's report was applied")
	}
	final := status(jobA, 5, egressapi.StateStopped)
	final.StoppedAt, final.Size, final.Duration = t0.Add(time.Minute), 1234, 59.5
	final.Files = []egressapi.File{{Storage: "local", Key: "rec/abcd-efgh-ijkl/a.mp4", Size: 1234, Duration: 59.5, Width: 1280, Height: 720, Format: "mov,mp4,m4a,3gp,3g2,mj2", Type: "video"}}
	j := apply(final, "https://edge/egress/files/local/rec/abcd-efgh-ijkl/a.mp4?exp=1&sig=x")
	if j.State != egressapi.StateStopped || j.Size != 1234 || j.Duration != 59.5 || len(j.Files) != 1 || j.StoppedAt == nil || !j.StoppedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("stopped: %+v", j)
	}
	if got, want := jobEvents(f, jobA), []string{"recording-starting", "recording-started", "recording-stopping", "recording-stopped"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	// Final is final: a later report (even newer) does not reopen it.
	if j := apply(status(jobA, 7, egressapi.StateRunning)); j.State != egressapi.StateStopped {
		t.Fatalf("final job reopened: %+v", j)
	}
	// recording-stopped carries the documented payload.
	f.Read(func(s *Store) {
		for _, d := range s.PendingDeliveries(0) {
			if d.EventType == "recording-stopped" {
				want := `{"webhookType":"recording-stopped","data":{"meetingId":"abcd-efgh-ijkl","sessionId":"111111111111111111111111","filePath":"rec/abcd-efgh-ijkl/a.mp4","fileUrl":"https://edge/egress/files/local/rec/abcd-efgh-ijkl/a.mp4?exp=1&sig=x"}}`
				if string(d.Body) != want {
					t.Fatalf("body %s\nwant %s", d.Body, want)
				}
				if d.URL != "https://hooks.example/x" || d.SessionID != sid {
					t.Fatalf("delivery %+v", d)
				}
			}
		}
	})
}

func TestJobConflictsFailAbortDelete(t *testing.T) {
	f := newTestFSM(t)
	sid := jobRoom(t, f)
	base := Job{Kind: egressapi.KindComposite, UserID: "u1", APIKey: "k1", RoomID: "abcd-efgh-ijkl", SessionID: sid, EdgeID: "edge1", CreatedAt: t0}
	a := base
	a.ID = jobA
	createJob(t, f, a)
	b := base
	b.ID = jobB
	if _, err := f.apply(CmdCreateJob, CreateJob{Job: b}); !errors.Is(err, ErrConflict) {
		t.Fatalf("second recording in a room: %v", err)
	}
	// Different participants may be recorded at once; the same one may not.
	p1 := Job{ID: "aaaaaaaaaaaaaaaaaaaaaa03", Kind: egressapi.KindParticipant, ParticipantID: "p1", UserID: "u1", RoomID: "abcd-efgh-ijkl", SessionID: sid, EdgeID: "edge1"}
	createJob(t, f, p1)
	p2 := p1
	p2.ID, p2.ParticipantID = "aaaaaaaaaaaaaaaaaaaaaa04", "p2"
	createJob(t, f, p2)
	p1b := p1
	p1b.ID = "aaaaaaaaaaaaaaaaaaaaaa05"
	if _, err := f.apply(CmdCreateJob, CreateJob{Job: p1b}); !errors.Is(err, ErrConflict) {
		t.Fatalf("second recording of p1: %v", err)
	}
	if _, err := f.apply(CmdCreateJob, CreateJob{Job: Job{ID: "x", Kind: egressapi.KindComposite, UserID: "u1", RoomID: "zzzz-zzzz-zzzz"}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("job of an unknown room: %v", err)
	}
	// Deleting a running job is refused; failing it sends recording-failed once.
	if _, err := f.apply(CmdDeleteJob, DeleteJob{UserID: "u1", ID: jobA, Kind: egressapi.KindComposite, At: t0}); !errors.Is(err, ErrConflict) {
		t.Fatalf("delete of a running job: %v", err)
	}
	v, err := f.apply(CmdFailJobs, FailJobs{IDs: []string{jobA, jobA, "nope"}, Reason: "edge edge1 lost", At: t0.Add(time.Minute)})
	if err != nil || v.(int) != 1 {
		t.Fatalf("fail: %v %v", v, err)
	}
	if got := jobEvents(f, jobA); !slices.Equal(got, []string{"recording-failed"}) {
		t.Fatalf("events %v", got)
	}
	f.Read(func(s *Store) {
		j, ok := s.Job("u1", jobA)
		if !ok || j.State != egressapi.StateFailed || j.Error != "edge edge1 lost" || j.StoppedAt == nil {
			t.Fatalf("failed job %+v", j)
		}
		if _, ok := s.Job("u2", jobA); ok {
			t.Fatal("another project sees the job")
		}
		if n := len(s.ActiveJobs("", "")); n != 2 {
			t.Fatalf("%d active jobs, want the two participant recordings", n)
		}
	})
	// Now the room may record again.
	createJob(t, f, b)
	// Abort removes a job that never ran; one that reported is kept.
	if _, err := f.apply(CmdAbortJob, AbortJob{ID: jobB}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.apply(CmdAbortJob, AbortJob{ID: jobA}); !errors.Is(err, ErrConflict) {
		t.Fatalf("abort of a job that ran: %v", err)
	}
	if _, err := f.apply(CmdDeleteJob, DeleteJob{UserID: "u1", ID: jobA, Kind: egressapi.KindHLS, At: t0}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete with the wrong kind: %v", err)
	}
	if _, err := f.apply(CmdDeleteJob, DeleteJob{UserID: "u1", ID: jobA, Kind: egressapi.KindComposite, At: t0}); err != nil {
		t.Fatal(err)
	}
	f.Read(func(s *Store) {
		if _, ok := s.Job("u1", jobA); ok {
			t.Fatal("deleted job still readable")
		}
		if _, ok := s.Job("u1", jobB); ok {
			t.Fatal("aborted job still readable")
		}
		rows, n := s.JobsPage(JobFilter{UserID: "u1", Kind: egressapi.KindParticipant, RoomID: "abcd-efgh-ijkl"}, Page{Limit: 1})
		if n != 2 || len(rows) != 1 || rows[0].ParticipantID != "p2" {
			t.Fatalf("participant list: %d %+v", n, rows)
		}
		rows, n = s.JobsPage(JobFilter{UserID: "u1", Kind: egressapi.KindParticipant, ParticipantID: "p1"}, Page{Limit: 10})
		if n != 1 || rows[0].ID != p1.ID {
			t.Fatalf("by participant: %d %+v", n, rows)
		}
		if _, n := s.JobsPage(JobFilter{UserID: "u1", Kind: egressapi.KindComposite}, Page{Limit: 10}); n != 0 {
			t.Fatalf("%d composite recordings listed after delete and abort", n)
		}
	})
}

func TestHLSWebhooksCarryURLs(t *testing.T) {
	f := newTestFSM(t)
	sid := jobRoom(t, f)
	createJob(t, f, Job{ID: jobA, Kind: egressapi.KindHLS, UserID: "u1", APIKey: "k1", RoomID: "abcd-efgh-ijkl", SessionID: sid, EdgeID: "edge1",
		PlaybackURL: "http://e/egress/hls/p/index.m3u8", LivestreamURL: "http://e/egress/hls/p/live.m3u8"})
	st := egressapi.Status{ID: jobA, Kind: egressapi.KindHLS, State: egressapi.StateRunning, Seq: 1}
	if _, err := f.apply(CmdJobStatus, JobStatus{EdgeID: "edge1", Status: st, At: t0}); err != nil {
		t.Fatal(err)
	}
	st.Seq, st.Playable = 2, true
	if _, err := f.apply(CmdJobStatus, JobStatus{EdgeID: "edge1", Status: st, At: t0}); err != nil {
		t.Fatal(err)
	}
	if got, want := jobEvents(f, jobA), []string{"hls-starting", "hls-started", "hls-playable"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	f.Read(func(s *Store) {
		for _, d := range s.PendingDeliveries(0) {
			if d.EventType == "hls-playable" {
				var b struct {
					Data map[string]string `json:"data"`
				}
				_ = json.Unmarshal(d.Body, &b)
				if b.Data["playbackHlsUrl"] != "http://e/egress/hls/p/index.m3u8" || b.Data["livestreamUrl"] != "http://e/egress/hls/p/live.m3u8" {
					t.Fatalf("hls-playable %s", d.Body)
				}
			}
		}
	})
}

// fillJobTables puts one job of each shape in the store (snapshot tests).
func fillJobTables(t *testing.T, f *testFSM) {
	t.Helper()
	addJobs(t, f, jobRoom(t, f))
}

// addJobs adds an RTMP job (running) and a merge job to room
// abcd-efgh-ijkl's session sid.
func addJobs(t *testing.T, f *testFSM, sid string) {
	t.Helper()
	createJob(t, f, Job{ID: jobA, Kind: egressapi.KindRTMP, UserID: "u1", APIKey: "k1", RoomID: "abcd-efgh-ijkl", SessionID: sid, EdgeID: "edge1",
		Config:  egressapi.Config{Layout: egressapi.Layout{Type: "GRID", Priority: "SPEAKER", GridSize: 4}, Theme: "DARK", Mode: "video-and-audio", Quality: "med", Orientation: "landscape"},
		Outputs: []egressapi.RTMPOutput{{URL: "rtmp://127.0.0.1/live", StreamKey: "k"}}, WebhookURL: "https://job.example/h", CreatedAt: t0, UpdatedAt: t0})
	st := egressapi.Status{ID: jobA, Kind: egressapi.KindRTMP, State: egressapi.StateRunning, Seq: 3, StartedAt: t0.Add(time.Second),
		Outputs: []egressapi.OutputStatus{{URL: "rtmp://127.0.0.1/live", State: egressapi.StateRunning}}}
	if _, err := f.apply(CmdJobStatus, JobStatus{EdgeID: "edge1", Status: st, At: t0.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	createJob(t, f, Job{ID: "bf37fabb-6e34-418b-bc29-97f053fc6cfe", Kind: egressapi.KindMerge, UserID: "u1", APIKey: "k1", RoomID: "abcd-efgh-ijkl", SessionID: sid, EdgeID: "edge1",
		Channel1: []MergeRef{{ParticipantID: "p1", RecordingID: jobB}}, CreatedAt: t0, UpdatedAt: t0})
}

func TestJobsSurviveSnapshot(t *testing.T) {
	f := newTestFSM(t)
	fillJobTables(t, f)
	g := restoreBytes(t, persist(t, f.FSM))
	g.Read(func(s *Store) {
		j, ok := s.Job("u1", jobA)
		if !ok || j.State != egressapi.StateRunning || j.Seq != 3 || len(j.Outputs) != 1 || j.Outputs[0].StreamKey != "k" || j.StartedAt == nil || len(j.Fired) != 2 {
			t.Fatalf("job after restore: %+v", j)
		}
		// Indexes are rebuilt: the active index and the session list.
		if a := s.ActiveJobs("abcd-efgh-ijkl", egressapi.KindRTMP); len(a) != 1 || a[0].ID != jobA {
			t.Fatalf("active after restore: %+v", a)
		}
		if m := s.SessionJobs("111111111111111111111111", egressapi.KindMerge); len(m) != 1 || len(m[0].Channel1) != 1 {
			t.Fatalf("merge after restore: %+v", m)
		}
	})
	// A restored store keeps applying Seq order.
	gt := &testFSM{FSM: g, t: t, index: f.index}
	if v, err := gt.apply(CmdJobStatus, JobStatus{EdgeID: "edge1", Status: egressapi.Status{ID: jobA, State: egressapi.StateStarting, Seq: 2}, At: t0}); err != nil || v.(*Job).State != egressapi.StateRunning {
		t.Fatalf("stale report after restore: %v %v", v, err)
	}
}

// TestJobsSnapshotGolden pins the jobs table's snapshot encoding (fields
// only ever added; regenerate with -update for a deliberate change).
func TestJobsSnapshotGolden(t *testing.T) {
	f := newTestFSM(t)
	fillJobTables(t, f)
	got := persist(t, f.FSM)
	path := filepath.Join("testdata", "snapshot-jobs.json")
	if *updateGolden {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("jobs snapshot encoding changed:\n got %s\nwant %s", got, want)
	}
}
