package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// The peer comparison: per N, every server measured in the run (Meridian,
// the trivial baseline, LiveKit, Janus...), the headline figures and
// Meridian ÷ that server. A server that could not be installed, built or
// measured keeps its line, marked missing with the reason.

// peerLine is one line of the comparison: a row and, for every server but
// Meridian, Meridian's figure at the same N divided by this server's.
type peerLine struct {
	row rowResult
	// vs is false when there is nothing to divide: this is Meridian's own
	// line, Meridian or this server is missing at this N, or a divisor is 0.
	vs                                     bool
	usRatio, marginalRatio, rssRatio, join float64
	// userRatio divides the CPU per packet outside the kernel: what the
	// servers' own code costs, without the system work, whose datagrams
	// are the same for every server (NaN for rows without the split).
	userRatio float64
}

// compare orders the rows by N, then by server in order of first
// appearance with Meridian first, and computes the ratios. A ratio whose
// divisor is not positive is NaN (printed n/a).
func compare(rows []rowResult) []peerLine {
	var labels []string
	for _, r := range rows {
		if !slices.Contains(labels, r.Label) {
			labels = append(labels, r.Label)
		}
	}
	rank := func(l string) int {
		if l == "meridian" {
			return -1
		}
		return slices.Index(labels, l)
	}
	sorted := slices.Clone(rows)
	slices.SortStableFunc(sorted, func(a, b rowResult) int {
		if a.Subs != b.Subs {
			return a.Subs - b.Subs
		}
		return rank(a.Label) - rank(b.Label)
	})
	var out []peerLine
	for _, r := range sorted {
		l := peerLine{row: r}
		if r.Label != "meridian" && r.Missing == "" {
			if m, ok := meridianAt(rows, r.Subs); ok {
				l.vs = true
				l.usRatio = div(m.ServerUsPerPkt, r.ServerUsPerPkt)
				l.userRatio = math.NaN()
				if m.ServerKernelUsPerPkt > 0 && r.ServerKernelUsPerPkt > 0 {
					l.userRatio = div(m.ServerUsPerPkt-m.ServerKernelUsPerPkt, r.ServerUsPerPkt-r.ServerKernelUsPerPkt)
				}
				l.marginalRatio = div(m.MarginalUsPerPkt, r.MarginalUsPerPkt)
				l.rssRatio = div(m.RSSPerSubKB, r.RSSPerSubKB)
				l.join = div(m.JoinSeconds, r.JoinSeconds)
			}
		}
		out = append(out, l)
	}
	return out
}

// meridianAt is the first measured Meridian row with n subscribers.
func meridianAt(rows []rowResult, n int) (rowResult, bool) {
	for _, r := range rows {
		if r.Label == "meridian" && r.Subs == n && r.Missing == "" {
			return r, true
		}
	}
	return rowResult{}, false
}

// div is a ÷ b, NaN when b is not positive (no meaningful ratio: a server
// that used no measurable CPU, or whose RSS shrank).
func div(a, b float64) float64 {
	if b <= 0 {
		return math.NaN()
	}
	return a / b
}

// kernelCell is the server's system CPU per forwarded packet, "–" for a
// row measured before the split was recorded.
func kernelCell(r rowResult) string {
	if r.ServerKernelUsPerPkt <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", r.ServerKernelUsPerPkt)
}

func fmtRatio(x float64) string {
	if math.IsNaN(x) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", x)
}

// printPeers writes the comparison table (markdown).
func printPeers(w io.Writer, rows []rowResult) {
	// The publisher's rate and the other load on the server's core say
	// whether a row was starved by something else on the machine.
	fmt.Fprintln(w, "| N subs | server | fwd pkt/s | delivered | µs server CPU / fwd pkt | of which in the kernel | marginal µs/pkt | RSS/sub KB | join s (all N receiving) | Meridian ÷ server: µs/pkt | µs/pkt outside the kernel | marginal | RSS/sub | join | publisher pkt/s | other load on server core | server CPU | forwarding delay ms to the socket p50 / p99 / max | to the subscriber's read p50 / p99 / max |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, l := range compare(rows) {
		r := l.row
		if r.Missing != "" {
			fmt.Fprintf(w, "| %d | %s | **missing**: %s %s\n", r.Subs, r.Label, cell(r.Missing), strings.Repeat("|", 17))
			continue
		}
		ratios := "| – | – | – | – | –"
		if l.vs {
			ratios = fmt.Sprintf("| %s | %s | %s | %s | %s", fmtRatio(l.usRatio), fmtRatio(l.userRatio), fmtRatio(l.marginalRatio), fmtRatio(l.rssRatio), fmtRatio(l.join))
		} else if r.Label != "meridian" {
			ratios = "| no Meridian row | | | |"
		}
		fmt.Fprintf(w, "| %d | %s | %.0f | %.1f%% | %.2f | %s | %.2f | %.0f | %.2f %s | %.0f | %.0f%% | %.0f%% | %s | %s |\n",
			r.Subs, r.Label, r.FwdPPS, r.DeliveryPct, r.ServerUsPerPkt, kernelCell(r), r.MarginalUsPerPkt, r.RSSPerSubKB, r.JoinSeconds, ratios, r.SentPPS, r.OtherCPUPct, r.ServerCPUPct, sockDelayCell(r), delayCell(r))
	}
}

// sockDelayCell is a row's forwarding delay to the probe subscribers'
// sockets, p50 / p99 / max in ms, with the design target (p99 ≤ 2 ms at
// half a core) marked when p99 misses it.
func sockDelayCell(r rowResult) string {
	if r.SockDelayPackets == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f / %.2f%s / %.2f", r.SockDelayP50Ms, r.SockDelayP99Ms, mark(r.SockDelayP99Ms <= targetDelayP99Ms), r.SockDelayMaxMs)
}

// delayCell is the same to the subscribers' reads (all subscribers; the
// generator's own queueing included, so no target).
func delayCell(r rowResult) string {
	if r.DelayPackets == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f / %.2f / %.2f", r.DelayP50Ms, r.DelayP99Ms, r.DelayMaxMs)
}

// measured drops the rows marked missing.
func measured(rows []rowResult) []rowResult {
	var out []rowResult
	for _, r := range rows {
		if r.Missing == "" {
			out = append(out, r)
		}
	}
	return out
}

// cell makes a reason safe inside one markdown table cell.
func cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return strings.ReplaceAll(s, "|", "\\|")
}

// runMissing writes rows that say why a server has no numbers, one per N
// (run.sh: a server that is not installed, or whose row failed):
//
//	loadgen missing -label livekit -subs 50,100 -reason "go install failed: ..." -json f.json
func runMissing(args []string) error {
	fs := flag.NewFlagSet("missing", flag.ContinueOnError)
	label := fs.String("label", "", "server label")
	subs := fs.String("subs", "", "comma-separated subscriber counts")
	reason := fs.String("reason", "", "why there are no numbers")
	out := fs.String("json", "", "write the rows here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *label == "" || *reason == "" || *out == "" {
		return fmt.Errorf("-label, -reason and -json are required")
	}
	var rows []rowResult
	for _, s := range strings.Split(*subs, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			return fmt.Errorf("-subs: bad count %q", s)
		}
		rows = append(rows, rowResult{Label: *label, Subs: n, Missing: *reason})
	}
	b, _ := json.MarshalIndent(rows, "", "  ")
	return os.WriteFile(*out, append(b, '\n'), 0o644)
}

// runReport prints the comparison and the full table from JSON files
// written with -json (or by `loadgen missing`).
func runReport(files []string) error {
	var rows []rowResult
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var rs []rowResult
		if err := json.Unmarshal(b, &rs); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		rows = append(rows, rs...)
	}
	printReport(os.Stdout, rows)
	return nil
}

// printReport writes the comparison when more than one server is in the
// rows, then the full table.
func printReport(w io.Writer, rows []rowResult) {
	labels := map[string]bool{}
	for _, r := range rows {
		labels[r.Label] = true
	}
	if len(labels) > 1 {
		printPeers(w, rows)
		fmt.Fprintln(w)
	}
	printTable(w, rows)
}
