package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMarkPhasesFollowStartLines(t *testing.T) {
	log := `meridian-bench: started 2026-12-05T07:00:00.000000000Z
time=2026-12-05T07:00:00.100Z level=INFO msg="raft: ready"
gc 1 @0.050s 0%: 0.01+2.1+0.003 ms clock, 0.02+0.1/0.5/0.2+0.006 ms cpu, 4->4->1 MB, 4 MB goal, 0 MB stacks, 0 MB globals, 2 P
gc 17 @100.500s 3%: 0.31+1481+0.003 ms clock, 0.6+0/2000/900+0.006 ms cpu, 581->599->209 MB, 720 MB goal, 0 MB stacks, 0 MB globals, 2 P
meridian-bench: started 2026-12-05T07:10:00.000000000Z
gc 1 @20.000s 1%: 0.1+400.5+0.01 ms clock, 0.2+0/300/100+0.02 ms cpu, 300->310->200 MB, 400 MB goal, 0 MB stacks, 0 MB globals, 2 P
`
	ps, err := markPhases(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time { t, _ := time.Parse(time.RFC3339Nano, s); return t }
	want := []markPhase{
		// the 2.1 ms cycle is under minMark
		{at("2026-12-05T07:01:40.500Z"), at("2026-12-05T07:01:41.981Z")},
		{at("2026-12-05T07:10:20Z"), at("2026-12-05T07:10:20.4005Z")}, // after the restart's start line
	}
	if len(ps) != len(want) {
		t.Fatalf("got %d phases %v, want %v", len(ps), ps, want)
	}
	for i := range want {
		if !ps[i].from.Equal(want[i].from) || !ps[i].to.Equal(want[i].to) {
			t.Fatalf("phase %d: %v–%v, want %v–%v", i, ps[i].from, ps[i].to, want[i].from, want[i].to)
		}
	}
}

// TestCollectionsInReport: a three-node result with logs beside its JSON
// gets the stretches counted by who was marking; without gctrace lines
// the report says nothing about collections.
func TestCollectionsInReport(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 7, 0, 0, 0, time.UTC)
	bin := func(endSec int, p99 float64) Bin {
		return Bin{Rooms: endSec * 1000, N: 5000, Seconds: 5, PerSec: 1000, P99Ms: p99, End: t0.Add(time.Duration(endSec) * time.Second)}
	}
	r := &Result{Leader: "c1", Nodes: []*node{{Name: "c1"}, {Name: "c2"}, {Name: "c3"}},
		Steps: []*Step{{Fill: Phase{N: 20000, Timeline: []Bin{bin(5, 8), bin(10, 30), bin(15, 25), bin(20, 9)}}}}}
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, "nodes-3-"+name+".log"), []byte("meridian-bench: started 2026-12-05T07:00:00Z\n"+body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The leader marks in the second stretch (5–10 s), both followers in
	// the third (10–15 s), nobody in the first and last.
	write("c1", "gc 9 @6.000s 2%: 0.1+2000+0.01 ms clock, x\n")
	write("c2", "gc 9 @11.000s 2%: 0.1+1000+0.01 ms clock, x\n")
	write("c3", "gc 9 @12.000s 2%: 0.1+1000+0.01 ms clock, x\n")

	var out strings.Builder
	printCollections(&out, r, filepath.Join(dir, "nodes-3"))
	for _, row := range []string{"| none | 2 | 0 |", "| 2 nodes, not the leader | 1 | 1 |", "| the leader (with or without others) | 1 | 1 |"} {
		if !strings.Contains(out.String(), row) {
			t.Fatalf("report lacks %q:\n%s", row, out.String())
		}
	}

	write("c1", "no collections logged\n")
	write("c2", "")
	write("c3", "")
	out.Reset()
	printCollections(&out, r, filepath.Join(dir, "nodes-3"))
	if out.Len() != 0 {
		t.Fatalf("without gctrace lines the report printed:\n%s", out.String())
	}
}
