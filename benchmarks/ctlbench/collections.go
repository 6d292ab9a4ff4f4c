package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// With GODEBUG=gctrace=1 every node logs its collections. The fill's slow
// stretches line up with them (docs/benchmarks.md, "A leaf in its node's
// allocation"): this part of the report counts the stretches of the last
// fill by which nodes were marking during them, and how many of each kind
// missed the p99 target. control.sh writes a "meridian-bench: started"
// line into a node's log before each start, since gctrace gives a cycle's
// start in seconds from the process's start.

// minMark is the shortest mark phase counted: shorter ones (a small heap,
// early in a fill) do not hold up a stretch.
const minMark = 300 * time.Millisecond

// startedPrefix begins the line control.sh writes before each start.
const startedPrefix = "meridian-bench: started "

// markPhase is one collection's concurrent mark phase on one node.
type markPhase struct{ from, to time.Time }

// gctraceLine matches "gc 12 @54.026s 1%: 0.31+1481+0.003 ms clock, ...":
// the cycle's start after the process started, and its mark phase (the
// middle clock figure, ms).
var gctraceLine = regexp.MustCompile(`^gc \d+ @([0-9.]+)s \d+%: [0-9.]+\+([0-9.]+)\+`)

// markPhases reads a node's log: its mark phases of at least minMark, each
// placed after the start line that precedes it (a restarted node logs
// into the same file).
func markPhases(r io.Reader) ([]markPhase, error) {
	var (
		out     []markPhase
		started time.Time
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, startedPrefix); ok {
			t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(rest))
			if err != nil {
				return nil, fmt.Errorf("start line %q: %w", line, err)
			}
			started = t
			continue
		}
		m := gctraceLine.FindStringSubmatch(line)
		if m == nil || started.IsZero() {
			continue
		}
		at, err1 := strconv.ParseFloat(m[1], 64)
		markMs, err2 := strconv.ParseFloat(m[2], 64)
		if err1 != nil || err2 != nil {
			continue
		}
		mark := time.Duration(markMs * float64(time.Millisecond))
		if mark < minMark {
			continue
		}
		from := started.Add(time.Duration(at * float64(time.Second)))
		out = append(out, markPhase{from: from, to: from.Add(mark)})
	}
	return out, sc.Err()
}

// marking says who was marking in a stretch: the leader, and how many of
// the other nodes (counted only when the leader was not).
type marking struct {
	leader bool
	others int
}

// markingCount is a number of stretches and how many of them were slow
// (a p99 over the target).
type markingCount struct{ stretches, slow int }

// stretchesByMarking counts the stretches of tl by who marked in them.
func stretchesByMarking(tl []Bin, phases map[string][]markPhase, leader string) map[marking]markingCount {
	out := map[marking]markingCount{}
	for _, b := range tl {
		to := b.End
		from := to.Add(-time.Duration(b.Seconds * float64(time.Second)))
		var k marking
		for name, ps := range phases {
			for _, p := range ps {
				if p.from.Before(to) && p.to.After(from) {
					if name == leader {
						k.leader = true
					} else {
						k.others++
					}
					break
				}
			}
		}
		if k.leader {
			k.others = 0 // one row for the leader, whoever marked with it
		}
		c := out[k]
		c.stretches++
		if b.P99Ms > targetP99Ms {
			c.slow++
		}
		out[k] = c
	}
	return out
}

// printCollections adds the breakdown to a result's report when the nodes'
// logs (next to its JSON file, named prefix-NAME.log) carry gctrace lines.
func printCollections(w io.Writer, r *Result, logPrefix string) {
	tl := lastTimeline(r)
	if len(tl) == 0 || logPrefix == "" {
		return
	}
	phases := map[string][]markPhase{}
	traced := false
	for _, n := range r.Nodes {
		f, err := os.Open(logPrefix + "-" + n.Name + ".log")
		if err != nil {
			continue
		}
		ps, err := markPhases(f)
		f.Close()
		if err != nil {
			fmt.Fprintf(w, "\n(collections not counted: %s: %v)\n", n.Name, err)
			return
		}
		phases[n.Name] = ps
		traced = traced || len(ps) > 0
	}
	if !traced {
		return
	}
	counts := stretchesByMarking(tl, phases, r.Leader)
	fmt.Fprintf(w, "\nThe last fill's stretches by the nodes' collections running in them (gctrace, mark phases of %.1f s or more; slow: p99 over %d ms):\n\n", minMark.Seconds(), targetP99Ms)
	fmt.Fprintln(w, "| nodes marking in the stretch | stretches | slow |")
	fmt.Fprintln(w, "|---|---:|---:|")
	row := func(what string, k marking) {
		if c, ok := counts[k]; ok {
			fmt.Fprintf(w, "| %s | %d | %d |\n", what, c.stretches, c.slow)
		}
	}
	row("none", marking{})
	row("one node, not the leader", marking{others: 1})
	for n := 2; n < len(r.Nodes); n++ {
		row(fmt.Sprintf("%d nodes, not the leader", n), marking{others: n})
	}
	if len(r.Nodes) == 1 {
		row("the node", marking{leader: true})
	} else {
		row("the leader (with or without others)", marking{leader: true})
	}
}
