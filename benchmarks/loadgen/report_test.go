package main

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"testing"
)

func peerRows() []rowResult {
	return []rowResult{
		{Label: "livekit", Subs: 50, ServerUsPerPkt: 8, ServerKernelUsPerPkt: 3, MarginalUsPerPkt: 6, RSSPerSubKB: 2000, JoinSeconds: 4, FwdPPS: 10000, DeliveryPct: 100, SentPPS: 200, OtherCPUPct: 12},
		{Label: "meridian", Subs: 50, ServerUsPerPkt: 10, ServerKernelUsPerPkt: 6, MarginalUsPerPkt: 9, RSSPerSubKB: 1000, JoinSeconds: 1, FwdPPS: 10000, DeliveryPct: 100},
		{Label: "janus", Subs: 50, Missing: "janus is not installed (apt-get install -y janus)"},
		{Label: "baseline", Subs: 50, ServerUsPerPkt: 5, MarginalUsPerPkt: 0, RSSPerSubKB: 250, JoinSeconds: 0.5},
		{Label: "livekit", Subs: 100, ServerUsPerPkt: 7, RSSPerSubKB: 1900, JoinSeconds: 2},
		{Label: "meridian", Subs: 100, Missing: "row failed: only 3 of 100 subscribers receive audio and video"},
	}
}

func TestCompareRatiosAreMeridianOverPeerAtSameN(t *testing.T) {
	lines := compare(peerRows())
	var order []string
	for _, l := range lines {
		order = append(order, l.row.Label+"@"+strconv.Itoa(l.row.Subs))
	}
	// By N, Meridian first, then the others in order of first appearance.
	if got, want := strings.Join(order, " "), "meridian@50 livekit@50 janus@50 baseline@50 meridian@100 livekit@100"; got != want {
		t.Fatalf("order %q, want %q", got, want)
	}
	lk := lines[1]
	if !lk.vs {
		t.Fatal("livekit N=50 has no ratio")
	}
	near(t, "µs/pkt meridian ÷ livekit", lk.usRatio, 10.0/8)
	near(t, "marginal meridian ÷ livekit", lk.marginalRatio, 9.0/6)
	near(t, "µs/pkt outside the kernel meridian ÷ livekit", lk.userRatio, (10.0-6)/(8-3))
	near(t, "RSS/sub meridian ÷ livekit", lk.rssRatio, 0.5)
	near(t, "join meridian ÷ livekit", lk.join, 0.25)
	if lines[0].vs {
		t.Error("Meridian's own line has a ratio")
	}
	if lines[2].vs {
		t.Error("a missing server has a ratio")
	}
	// The baseline's marginal cost is 0: no ratio, not +Inf.
	if b := lines[3]; !b.vs || !math.IsNaN(b.marginalRatio) {
		t.Errorf("baseline marginal ratio %v, want NaN", b.marginalRatio)
	}
	// The baseline row has no user/system split: no ratio, not Meridian's
	// user time over the baseline's total.
	if b := lines[3]; !math.IsNaN(b.userRatio) {
		t.Errorf("baseline ratio outside the kernel %v, want NaN", b.userRatio)
	}
	near(t, "µs/pkt meridian ÷ baseline", lines[3].usRatio, 2)
	// Meridian's N=100 row failed: nothing to divide.
	if lines[5].vs {
		t.Error("livekit N=100 has a ratio against a missing Meridian row")
	}
}

func TestPeerTableKeepsMissingServersAndIsWellFormed(t *testing.T) {
	var buf bytes.Buffer
	rows := peerRows()
	rows[2].Missing = "go install failed: a | b"
	printReport(&buf, rows)
	out := buf.String()
	for _, want := range []string{
		"| 50 | livekit | 10000 | 100.0% | 8.00 | 3.00 | 6.00 | 2000 | 4.00 | 1.25× | 0.80× | 1.50× | 0.50× | 0.25× | 200 | 12% |",
		"| 50 | janus | **missing**: go install failed: a \\| b",
		"| 50 | baseline | 0 | 0.0% | 5.00 | – | 0.00 | 250 | 0.50 | 2.00× | n/a | n/a | 4.00× | 2.00× | 0 | 0% |",
		"| 100 | meridian | **missing**: row failed: only 3 of 100 subscribers receive audio and video",
		"| 100 | livekit | 0 | 0.0% | 7.00 | – | 0.00 | 1900 | 2.00 | no Meridian row | | | | | 0 | 0% |",
		"| janus | 50 | **missing**: go install failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	// Every line of a table has as many cells as its header.
	for _, table := range strings.Split(out, "\n\n") {
		var cols int
		for _, line := range strings.Split(strings.TrimSpace(table), "\n") {
			if !strings.HasPrefix(line, "|") {
				continue
			}
			n := strings.Count(line, "|") - strings.Count(line, "\\|")
			if cols == 0 {
				cols = n
			} else if n != cols {
				t.Errorf("%d cell separators, header has %d: %s", n, cols, line)
			}
		}
	}
}
