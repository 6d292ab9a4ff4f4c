package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"time"
)

// sample is one page of one repetition: every mark the probe recorded, in
// ms since that page's navigation started.
type sample struct {
	Rep   int                `json:"rep"`
	Page  string             `json:"page"`
	Marks map[string]float64 `json:"marks"`
}

// result is one run.
type result struct {
	Label   string    `json:"label"`
	Time    time.Time `json:"time"`
	URL     string    `json:"url"`
	Samples []sample  `json:"samples"`
	Failed  []string  `json:"failed,omitempty"`
	Summary summary   `json:"summary"`
}

// step is one stage of the critical path from opening the page to the
// other's first frame: from the previous step's end mark to End.
type step struct {
	Name, End string
}

// path is the order the observing page goes through. Each step ends at its
// mark and starts where the path had got to (the latest earlier end), so
// the steps add up to the first frame; a step that ended before that (done
// in parallel, off the critical path) counts 0. The first subscriber offer
// that carries a track arrives once the other page has published: that
// wait holds the other side's capture and publishing. An edge that opens
// the subscriber transport at join (an offer without tracks, marked
// sub-offer-first) has its ICE and DTLS done during that wait: those steps
// then count 0 and the first keyframe runs from the answer.
var path = []step{
	{"page load + SDK", "sdk-ready"},
	{"join API", "join-answer"},
	{"signaling connected (socket + join)", "joined"},
	{"wait for the subscriber offer with the other's track", "sub-offer"},
	{"subscriber answer", "sub-answer"},
	{"ICE connected", "sub-ice-connected"},
	{"DTLS connected", "sub-dtls-connected"},
	{"first keyframe received", "frame-received"},
	{"decoded and shown", "frame-presented"},
}

// otherMarks are shown as points in time too (the page's own publishing).
var otherMarks = []string{"doc-fetched", "meet-fetch-start", "meet-fetched", "sdk-fetch-start", "sdk-fetched", "join-request", "ws-open", "gum-end", "pub-offer", "pub-answer", "pub-ice-connected", "pub-dtls-connected", "pub-video-encoded", "pub-video-sent", "sub-offer-first", "sub-answer-first", "sub-track-video"}

// stat is a p50/p95 pair over n samples (ms).
type stat struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50Ms"`
	P95 float64 `json:"p95Ms"`
	Max float64 `json:"maxMs"`
}

type summary struct {
	// FirstFrame: per page, navigation start → the other's first frame shown.
	FirstFrame stat `json:"firstFrame"`
	// BothSee: per repetition, the later of the two pages (both see each other).
	BothSee stat            `json:"bothSee"`
	Steps   map[string]stat `json:"steps"`
	Marks   map[string]stat `json:"marks"`
	// SlowKeyframes counts pages whose first keyframe came more than
	// slowKeyframeMs after their subscriber was connected and had answered
	// the offer with the track (the later of the two): the long mode of a
	// bimodal wait (a keyframe request held back by the edge's limiter).
	SlowKeyframes int `json:"slowKeyframes"`
}

// slowKeyframeMs separates the two modes of the first-keyframe wait seen
// on loopback (tens of ms against 0.7–1 s).
const slowKeyframeMs = 500

// percentile is the nearest-rank q-quantile of xs (NaN when empty).
func percentile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func statOf(xs []float64) stat {
	if len(xs) == 0 {
		return stat{}
	}
	return stat{N: len(xs), P50: percentile(xs, 0.5), P95: percentile(xs, 0.95), Max: slices.Max(xs)}
}

// steps is the duration of each step of path for one sample: from where
// the path had got to (the latest end so far) to its own end, 0 if it
// ended earlier. A step whose end mark or whose start (the previous step's
// end) is missing is left out.
func (s sample) steps() map[string]float64 {
	out := map[string]float64{}
	at, haveAt := 0.0, true
	for _, st := range path {
		end, ok := s.Marks[st.End]
		if ok && haveAt {
			out[st.Name] = max(end-at, 0)
		}
		at, haveAt = max(at, end), ok
	}
	return out
}

func (r *result) summarize() {
	sm := summary{Steps: map[string]stat{}, Marks: map[string]stat{}}
	var first []float64
	perRep := map[int][]float64{}
	steps := map[string][]float64{}
	marks := map[string][]float64{}
	for _, s := range r.Samples {
		if f, ok := s.Marks["frame-presented"]; ok {
			first = append(first, f)
			perRep[s.Rep] = append(perRep[s.Rep], f)
		}
		st := s.steps()
		for k, v := range st {
			steps[k] = append(steps[k], v)
		}
		if w, ok := st["first keyframe received"]; ok && w > slowKeyframeMs {
			sm.SlowKeyframes++
		}
		for k, v := range s.Marks {
			marks[k] = append(marks[k], v)
		}
	}
	var both []float64
	for _, fs := range perRep {
		if len(fs) == 2 {
			both = append(both, max(fs[0], fs[1]))
		}
	}
	sm.FirstFrame, sm.BothSee = statOf(first), statOf(both)
	for k, v := range steps {
		sm.Steps[k] = statOf(v)
	}
	for k, v := range marks {
		if k != "frame-size" {
			sm.Marks[k] = statOf(v)
		}
	}
	r.Summary = sm
}

// Design target (issue 11), printed next to the numbers, never asserted.
const targetP95Ms = 400

// cells is a stat's p50, p95 and max as table cells, "–" without samples.
func (x stat) cells() (p50, p95, mx string) {
	if x.N == 0 {
		return "–", "–", "–"
	}
	return fmt.Sprintf("%.0f", x.P50), fmt.Sprintf("%.0f", x.P95), fmt.Sprintf("%.0f", x.Max)
}

func printReport(w io.Writer, r result) {
	sm := r.Summary
	over := ""
	if sm.BothSee.N > 0 && sm.BothSee.P95 > targetP95Ms {
		over = " (over)"
	}
	fmt.Fprintf(w, "Join to first frame, %s: %d repetitions with both pages, %d pages, %d repetitions failed\n\n", r.Label, sm.BothSee.N, sm.FirstFrame.N, len(r.Failed))
	fmt.Fprintln(w, "| ms after opening the page | p50 | p95 | max | n |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
	a, b, c := sm.BothSee.cells()
	fmt.Fprintf(w, "| both pages see each other's first frame (target p95 ≤ %d) | %s | %s%s | %s | %d |\n", targetP95Ms, a, b, over, c, sm.BothSee.N)
	a, b, c = sm.FirstFrame.cells()
	fmt.Fprintf(w, "| a page sees the other's first frame | %s | %s | %s | %d |\n", a, b, c, sm.FirstFrame.N)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| step (per page, in order; they add up to the first frame) | ends at mark | p50 ms | p95 ms | max ms | n |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|")
	for _, st := range path {
		x := sm.Steps[st.Name]
		a, b, c := x.cells()
		fmt.Fprintf(w, "| %s | `%s` | %s | %s | %s | %d |\n", st.Name, st.End, a, b, c, x.N)
	}
	fmt.Fprintf(w, "\nfirst keyframe more than %d ms after the subscriber was connected and had the track: %d of %d pages\n", slowKeyframeMs, sm.SlowKeyframes, sm.Steps["first keyframe received"].N)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| mark (ms after opening the page) | p50 | p95 | n |")
	fmt.Fprintln(w, "|---|---:|---:|---:|")
	for _, st := range path {
		x := sm.Marks[st.End]
		a, b, _ := x.cells()
		fmt.Fprintf(w, "| `%s` | %s | %s | %d |\n", st.End, a, b, x.N)
	}
	for _, k := range otherMarks {
		if x, ok := sm.Marks[k]; ok {
			a, b, _ := x.cells()
			fmt.Fprintf(w, "| `%s` | %s | %s | %d |\n", k, a, b, x.N)
		}
	}
	for _, f := range r.Failed {
		fmt.Fprintf(w, "\nfailed: %s", f)
	}
	if len(r.Failed) > 0 {
		fmt.Fprintln(w)
	}
}

// runReport prints the tables of saved runs.
func runReport(files []string) error {
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var r result
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		r.summarize()
		printReport(os.Stdout, r)
	}
	return nil
}
