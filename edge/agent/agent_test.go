package agent

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-video/meridian/shared/edgeapi"
	"github.com/meridian-video/meridian/shared/egressapi"
)

// TestFullQueueKeepsLastEgressStatus: while the control plane refuses
// events, a full queue gives up statuses that a later status of the same
// job supersedes, then the oldest other events — never a job's latest
// status; once control accepts, what is left arrives in order.
func TestFullQueueKeepsLastEgressStatus(t *testing.T) {
	var accept atomic.Bool
	var mu sync.Mutex
	var got []edgeapi.Event
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/internal/v1/edges/events":
			if !accept.Load() {
				http.Error(w, `{"message":"not now"}`, http.StatusServiceUnavailable)
				return
			}
			var b edgeapi.EventBatch
			body, _ := io.ReadAll(r.Body)
			if err := json.Unmarshal(body, &b); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			mu.Lock()
			got = append(got, b.Events...)
			mu.Unlock()
		}
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	a, err := New(Config{ControlURLs: []string{srv.URL}, EdgeToken: "t", MaxQueue: 5, HeartbeatEvery: time.Hour,
		Register: edgeapi.Register{EdgeID: "e1", Region: "local", SignalURL: "ws://x/rtc"}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	a.Start()
	defer a.Close()
	status := func(job string, seq uint64, s egressapi.State) {
		a.ReportEgress(egressapi.Status{ID: job, RoomID: "r", State: s, Seq: seq})
	}
	part := func(kind, pid string) {
		a.Report(edgeapi.Event{Kind: kind, RoomID: "r", ParticipantID: pid})
	}
	part(edgeapi.EventParticipantJoined, "p1")
	status("j1", 1, egressapi.StateRunning)
	status("j1", 2, egressapi.StateStopping)
	part(edgeapi.EventParticipantLeft, "p1")
	status("j2", 1, egressapi.StateRunning)
	status("j1", 3, egressapi.StateStopped)    // drops j1 seq 1
	status("j2", 2, egressapi.StateFailed)     // drops j1 seq 2
	part(edgeapi.EventParticipantJoined, "p2") // drops j2 seq 1
	part(edgeapi.EventParticipantJoined, "p3") // drops p1's join, the oldest other event
	accept.Store(true)
	deadline := time.Now().Add(30 * time.Second)
	for a.Pending() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d events still pending", a.Pending())
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	var seen []string
	for _, ev := range got {
		if ev.Egress != nil {
			seen = append(seen, fmt.Sprintf("%s/%d", ev.Egress.ID, ev.Egress.Seq))
		} else {
			seen = append(seen, ev.Kind+"/"+ev.ParticipantID)
		}
		if ev.ID == "" || ev.At.IsZero() {
			t.Fatalf("event without id or time: %+v", ev)
		}
	}
	want := "[participant-left/p1 j1/3 j2/2 participant-joined/p2 participant-joined/p3]"
	if fmt.Sprint(seen) != want {
		t.Fatalf("control received %v, want %s", seen, want)
	}
}

// TestFullQueueDuringDelivery: events dropped from a full queue while a
// batch is in flight do not make the acknowledgement remove events that
// were never sent.
func TestFullQueueDuringDelivery(t *testing.T) {
	registered := make(chan struct{})
	inFlight := make(chan struct{}, 1)
	release := make(chan struct{})
	var mu sync.Mutex
	var got []string
	var batches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/internal/v1/edges/register":
			<-registered
		case "/internal/v1/edges/events":
			var b edgeapi.EventBatch
			body, _ := io.ReadAll(r.Body)
			_ = json.Unmarshal(body, &b)
			if batches.Add(1) == 1 {
				inFlight <- struct{}{}
				<-release
			}
			mu.Lock()
			for _, ev := range b.Events {
				got = append(got, ev.ParticipantID)
			}
			mu.Unlock()
		}
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	a, err := New(Config{ControlURLs: []string{srv.URL}, EdgeToken: "t", MaxQueue: 3, HeartbeatEvery: time.Hour,
		Register: edgeapi.Register{EdgeID: "e1", Region: "local", SignalURL: "ws://x/rtc"}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	a.Start()
	defer a.Close()
	for _, p := range []string{"p1", "p2", "p3"} {
		a.Report(edgeapi.Event{Kind: edgeapi.EventParticipantJoined, RoomID: "r", ParticipantID: p})
	}
	close(registered)
	<-inFlight                                                                                      // p1, p2, p3 are being delivered
	a.Report(edgeapi.Event{Kind: edgeapi.EventParticipantJoined, RoomID: "r", ParticipantID: "p4"}) // full: p1 is dropped
	close(release)
	deadline := time.Now().Add(30 * time.Second)
	for a.Pending() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d events still pending", a.Pending())
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(got) != "[p1 p2 p3 p4]" {
		t.Fatalf("control received %v, want [p1 p2 p3 p4]", got)
	}
}
