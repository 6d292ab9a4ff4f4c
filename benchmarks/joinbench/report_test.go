package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestPercentileNearestRank(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3, 10, 9, 8, 7, 6} // 1..10, unsorted
	for _, c := range []struct{ q, want float64 }{{0.5, 5}, {0.95, 10}, {0.9, 9}, {0.1, 1}, {0, 1}, {1, 10}} {
		if got := percentile(xs, c.q); got != c.want {
			t.Errorf("q=%v: %v, want %v", c.q, got, c.want)
		}
	}
	if xs[0] != 5 {
		t.Error("percentile sorted its input")
	}
	// 20 samples: the 95th percentile is the 19th, not the largest.
	var ys []float64
	for i := 1; i <= 20; i++ {
		ys = append(ys, float64(i*10))
	}
	if got := percentile(ys, 0.95); got != 190 {
		t.Errorf("p95 of 20 = %v, want 190", got)
	}
}

// The steps of a page run from one mark to the next along the path and add
// up to its first frame; a missing mark leaves out its step and the next.
func TestStepsFollowThePath(t *testing.T) {
	s := sample{Marks: map[string]float64{
		"sdk-ready": 100, "join-answer": 130, "joined": 160, "sub-offer": 400, "sub-answer": 410,
		"sub-ice-connected": 450, "sub-dtls-connected": 480, "frame-received": 700, "frame-presented": 720,
		"gum-end": 300,
	}}
	st := s.steps()
	want := map[string]float64{
		"page load + SDK": 100, "join API": 30, "signaling connected (socket + join)": 30, "wait for the subscriber offer with the other's track": 240,
		"subscriber answer": 10, "ICE connected": 40, "DTLS connected": 30, "first keyframe received": 220, "decoded and shown": 20,
	}
	var sum float64
	for k, v := range want {
		if st[k] != v {
			t.Errorf("%s = %v, want %v", k, st[k], v)
		}
		sum += st[k]
	}
	if len(st) != len(path) || sum != 720 {
		t.Errorf("%d steps adding up to %v, want %d adding up to the first frame (720)", len(st), sum, len(path))
	}

	delete(s.Marks, "sub-ice-connected")
	st = s.steps()
	if _, ok := st["ICE connected"]; ok {
		t.Error("a step without its end mark")
	}
	if _, ok := st["DTLS connected"]; ok {
		t.Error("a step without its start mark")
	}
	if st["first keyframe received"] != 220 {
		t.Errorf("first keyframe = %v, want 220", st["first keyframe received"])
	}
}

// An edge that opens the subscriber transport at join has its ICE and DTLS
// done before the offer with the other's track: those steps are off the
// critical path (0), the first keyframe runs from the answer, and the steps
// still add up to the first frame.
func TestStepsWithTheTransportOpenedAtJoin(t *testing.T) {
	s := sample{Marks: map[string]float64{
		"sdk-ready": 100, "join-answer": 130, "joined": 160, "sub-offer-first": 165, "sub-answer-first": 180,
		"sub-ice-connected": 200, "sub-dtls-connected": 215, "sub-offer": 400, "sub-answer": 410,
		"frame-received": 500, "frame-presented": 520,
	}}
	st := s.steps()
	want := map[string]float64{
		"page load + SDK": 100, "join API": 30, "signaling connected (socket + join)": 30,
		"wait for the subscriber offer with the other's track": 240, "subscriber answer": 10,
		"ICE connected": 0, "DTLS connected": 0, "first keyframe received": 90, "decoded and shown": 20,
	}
	var sum float64
	for k, v := range want {
		if got, ok := st[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
		sum += st[k]
	}
	if len(st) != len(path) || sum != 520 {
		t.Errorf("%d steps adding up to %v, want %d adding up to the first frame (520)", len(st), sum, len(path))
	}
}

func TestSummaryBothSeeIsTheLaterPage(t *testing.T) {
	r := result{Label: "meridian"}
	for rep, f := range [][2]float64{{500, 700}, {900, 600}, {400, 450}} {
		r.Samples = append(r.Samples,
			sample{Rep: rep, Page: "A", Marks: map[string]float64{"sdk-ready": 50, "frame-presented": f[0]}},
			sample{Rep: rep, Page: "B", Marks: map[string]float64{"sdk-ready": 60, "frame-presented": f[1]}})
	}
	// Page B of rep 1 waited 700 ms for its first keyframe, A of rep 0 exactly 500.
	r.Samples[3].Marks["sub-dtls-connected"], r.Samples[3].Marks["frame-received"] = 100, 800
	r.Samples[0].Marks["sub-dtls-connected"], r.Samples[0].Marks["frame-received"] = 0, 500
	// A repetition where only one page got a frame counts for the pages,
	// not for "both see each other".
	r.Samples = append(r.Samples, sample{Rep: 3, Page: "A", Marks: map[string]float64{"frame-presented": 100}})
	r.Failed = []string{"rep 3: page B: no frame"}
	r.summarize()
	sm := r.Summary
	if sm.BothSee.N != 3 || sm.BothSee.P50 != 700 || sm.BothSee.Max != 900 {
		t.Errorf("both see: %+v, want n=3 p50=700 max=900", sm.BothSee)
	}
	if sm.FirstFrame.N != 7 || sm.FirstFrame.P50 != 500 {
		t.Errorf("first frame: %+v, want n=7 p50=500", sm.FirstFrame)
	}
	if x := sm.Steps["page load + SDK"]; x.N != 6 || x.P50 != 50 || x.Max != 60 {
		t.Errorf("page load step: %+v", x)
	}

	var buf bytes.Buffer
	printReport(&buf, r)
	out := buf.String()
	for _, want := range []string{
		"| both pages see each other's first frame (target p95 ≤ 400) | 700 | 900 (over) | 900 | 3 |",
		"| page load + SDK | `sdk-ready` | 50 | 60 | 60 | 6 |",
		"| join API | `join-answer` | – | – | – | 0 |",
		"failed: rep 3: page B: no frame",
		"first keyframe more than 500 ms after the subscriber was connected and had the track: 1 of 2 pages",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	// The summary, empty stats included, is valid JSON.
	if _, err := json.Marshal(r); err != nil {
		t.Errorf("result does not marshal: %v", err)
	}
}
