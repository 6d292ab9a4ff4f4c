package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

func runReport(files []string) error {
	if len(files) == 0 {
		return errors.New("give result files")
	}
	var results []*Result
	var logPrefixes []string
	for _, f := range files {
		var r Result
		if err := readJSON(f, &r); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		results = append(results, &r)
		// control.sh keeps the nodes' logs beside the JSON: nodes-3.json,
		// nodes-3-c1.log, ...
		logPrefixes = append(logPrefixes, strings.TrimSuffix(f, ".json"))
	}
	printReport(os.Stdout, results, logPrefixes)
	return nil
}

func printReport(w io.Writer, results []*Result, logPrefixes []string) {
	for i, r := range results {
		prefix := ""
		if i < len(logPrefixes) {
			prefix = logPrefixes[i]
		}
		printResult(w, r, prefix)
	}
}

func printResult(w io.Writer, r *Result, logPrefix string) {
	fmt.Fprintf(w, "### %s\n\n", r.Label)
	fmt.Fprintf(w, "%s; started %s; leader %s", r.Machine, r.Started.Format("2006-01-02 15:04 UTC"), r.Leader)
	if r.Follower != "" {
		fmt.Fprintf(w, ", follower %s", r.Follower)
	}
	fmt.Fprintf(w, "; %d clients; room body `%s`.\n\n", r.Clients, r.Body)
	if len(r.Steps) == 0 {
		fmt.Fprintln(w, "(no step completed)")
		return
	}

	fmt.Fprintf(w, "**Creates** (`POST /v2/rooms`, %d clients, through the leader; a fill while the store grows, or a %s window at a size):\n\n", r.Clients, window(r))
	fmt.Fprintln(w, "| rooms | creates/s | p50 ms | p99 ms | disk written per create (write_bytes) | written to the data directory's device per create (whole machine) | bytes passed to write calls per create (wchar, files and sockets) | server CPU | CPU µs per create | other load on server core | client CPU |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	from := r.Baseline.Rooms
	row := func(label string, f Phase) {
		dev := deviceSize(f)
		fmt.Fprintf(w, "| %s | %.0f | %.2f | %.1f | %s | %s | %s | %.0f %% | %.0f | %.0f %% | %.0f %% |\n", label, f.PerSec, f.P50Ms, f.P99Ms,
			size(f.DiskPerOp), dev, size(f.WcharPerOp), f.ServerCPUPct, f.CPUPerOpUs, f.OtherLoadPct, f.ClientCPUPct)
	}
	for _, s := range r.Steps {
		if f := s.Fill; f.N > 0 {
			label := count(from) + " → " + count(s.Rooms)
			if f.Rate > 0 {
				// Open loop: latencies from each create's scheduled start.
				label += fmt.Sprintf(", paced at %s/s", count(int(f.Rate)))
			}
			row(label, f)
		}
		if s.Writes != nil {
			row("at "+count(s.Rooms), *s.Writes)
		}
		from = s.Rooms + extraWrites(s)
	}
	if tl := lastTimeline(r); len(tl) > 0 {
		fmt.Fprintf(w, "\nLast fill in %d-second stretches (every %s shown):\n\n", roundSecs(tl), nth(len(tl)))
		fmt.Fprintln(w, "| rooms at end of stretch | creates/s | p50 ms | p99 ms | disk written per create | server CPU |")
		fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|")
		step := max(1, (len(tl)+9)/10)
		for i := 0; i < len(tl); i += step {
			b := tl[i]
			fmt.Fprintf(w, "| %s | %.0f | %.2f | %.1f | %s | %.0f %% |\n", count(b.Rooms), b.PerSec, b.P50Ms, b.P99Ms, size(b.DiskPerOp), b.ServerCPUPct)
		}
		if (len(tl)-1)%step != 0 {
			b := tl[len(tl)-1]
			fmt.Fprintf(w, "| %s | %.0f | %.2f | %.1f | %s | %.0f %% |\n", count(b.Rooms), b.PerSec, b.P50Ms, b.P99Ms, size(b.DiskPerOp), b.ServerCPUPct)
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w, stallSummary(tl))
		printCollections(w, r, logPrefix)
	}

	lc := r.ListClients
	if lc == 0 {
		lc = r.Clients
	}
	listers := min(lc, r.Clients/2)
	fmt.Fprintf(w, "\n**Reads** (through the leader, GET at %d clients, lists at %d; every answer checked: the room asked for, the page's total and length):\n\n", r.Clients, lc)
	fmt.Fprintf(w, "| rooms | `GET /v2/rooms/{id}` /s (p50 / p99 ms) | server CPU µs per GET | page 1 /s (p50 / p99 ms) | server CPU µs per page 1 | deep page /s (p50 / p99 ms) | GET p50 / p99 ms at %d clients while %d list page 1 | server CPU / client CPU (GET) | other load on server core (GET) |\n", r.Clients-listers, listers)
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, s := range r.Steps {
		under := "–"
		if s.GetUnderList != nil {
			under = fmt.Sprintf("%.2f / %.1f (list page 1: %.0f/s)", s.GetUnderList.P50Ms, s.GetUnderList.P99Ms, s.ListUnderGet.PerSec)
		}
		fmt.Fprintf(w, "| %s | %s | %.0f | %s | %.0f | %s (page %s) | %s | %.0f %% / %.0f %% | %.0f %% |\n", count(s.Rooms), rate(s.Get), s.Get.CPUPerOpUs, rate(s.Page1), s.Page1.CPUPerOpUs, rate(s.DeepPage),
			count(s.DeepNo), under, s.Get.ServerCPUPct, s.Get.ClientCPUPct, s.Get.OtherLoadPct)
	}

	fmt.Fprintln(w, "\n**One client writing sequentially** (and, with a follower, all clients writing through it):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| rooms | through the leader p50 / p99 ms | through a follower p50 / p99 ms | follower ÷ leader (p50) | disk written per write (write_bytes, leader / follower) | written to the device per write (whole machine, leader / follower) | all clients through a follower: creates/s (p50 / p99 ms) |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
	for _, s := range r.Steps {
		if s.SeqLeader == nil {
			continue
		}
		fol, rat, disk, device, all := "–", "–", size(s.SeqLeader.DiskPerOp), deviceSize(*s.SeqLeader), "–"
		if s.SeqFollower != nil {
			fol = fmt.Sprintf("%.2f / %.1f", s.SeqFollower.P50Ms, s.SeqFollower.P99Ms)
			rat = fmt.Sprintf("%.1f×", ratio(s.SeqFollower.P50Ms, s.SeqLeader.P50Ms))
			disk += " / " + size(s.SeqFollower.DiskPerOp)
			device += " / " + deviceSize(*s.SeqFollower)
		}
		if s.FollowerWrite != nil {
			all = rate(*s.FollowerWrite)
		}
		fmt.Fprintf(w, "| %s | %.2f / %.1f | %s | %s | %s | %s | %s |\n", count(s.Rooms), s.SeqLeader.P50Ms, s.SeqLeader.P99Ms, fol, rat, disk, device, all)
	}

	names := nodeNames(r)
	fmt.Fprintf(w, "\n**Memory and disk** (at each size, before the reads; RSS is the leader's, %s; per room = Δ from %s rooms ÷ Δ rooms):\n\n", r.Leader, count(r.Baseline.Rooms))
	fmt.Fprintln(w, "| rooms | RSS | RSS per room | Go heap in use per room | data on disk (all nodes) | peak RSS of all servers while listing |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|")
	for _, s := range r.Steps {
		dr := float64(s.Memory.Rooms - r.Baseline.Rooms)
		heap := "–"
		if h, ok := s.Memory.HeapInuse[r.Leader]; ok {
			heap = size(ratio(float64(h-r.Baseline.HeapInuse[r.Leader]), dr))
		}
		var disk int64
		for _, n := range names {
			disk += s.Memory.DataBytes[n]
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", count(s.Rooms), size(float64(s.Memory.RSS[r.Leader])),
			size(ratio(float64(s.Memory.RSS[r.Leader]-r.Baseline.RSS[r.Leader]), dr)), heap, size(float64(disk)),
			size(float64(max(s.Page1.PeakRSS, s.DeepPage.PeakRSS))))
	}

	if len(r.Snapshots) > 0 {
		fmt.Fprintln(w, "\n**Snapshots** (newest on disk at the end: after the last fill, or taken by the servers restarted with a snapshot threshold of 1 when seeding):")
		fmt.Fprintln(w)
		for _, n := range names {
			sw := r.Snapshots[n]
			if sw == nil {
				continue
			}
			if !sw.Found {
				fmt.Fprintf(w, "- %s: no snapshot found under its data directory after %.0f s\n", n, sw.WaitedSeconds)
				continue
			}
			fmt.Fprintf(w, "- %s: %s at index %s of %s applied (%.0f %%), written in %.2f s (persist only); waited %.0f s for it\n", n, size(float64(sw.Bytes)),
				count(int(sw.Index)), count(int(sw.AppliedIndex)), 100*ratio(float64(sw.Index), float64(sw.AppliedIndex)), sw.PersistSeconds, sw.WaitedSeconds)
		}
	}
	if len(r.Seeds) > 0 {
		fmt.Fprintln(w, "\n**Seeding and restart** (nodes stopped; `ctlbench seed` applies CreateRoom commands through `state.FSM.Apply` and writes a Raft snapshot with the FSM's own Persist; then every node is started again and timed from process start to `/healthz` 200 with the rooms listed):")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| rooms | rooms seeded | seeding applies | snapshot (seeder) | FSM.Snapshot + Persist | restart to ready | RSS after the start | RSS per room |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|")
		for i, sd := range r.Seeds {
			ready, rssAfter, per := "–", "–", "–"
			if i < len(r.Restarts) {
				rs := r.Restarts[i]
				ready = fmt.Sprintf("%.2f s (%s)", rs.ReadySeconds, rs.Node)
				rssAfter = size(float64(rs.RSSAfter))
				per = size(ratio(float64(rs.RSSAfter-r.Baseline.RSS[rs.Node]), float64(rs.Rooms-r.Baseline.Rooms)))
			}
			fmt.Fprintf(w, "| %s | %s | %.1f s | %s | %.2f s | %s | %s | %s |\n", count(sd.Rooms), count(sd.Added), sd.ApplySeconds, size(float64(sd.SnapshotBytes)),
				sd.PersistSeconds, ready, rssAfter, per)
		}
	}
	if rs := r.Restart; rs != nil {
		snap := ""
		if rs.SnapshotBefore != nil {
			snap = fmt.Sprintf(" from a %s snapshot at index %s", size(float64(rs.SnapshotBefore.Bytes)), count(int(rs.SnapshotBefore.Index)))
		}
		fmt.Fprintf(w, "\n**Restart**: %s killed (SIGKILL) at %s rooms and started again: ready (`/healthz` 200) %.2f s after its start%s; "+
			"it lists all %s rooms and serves the last one created; RSS after the restart %s (%s per room).\n",
			rs.Node, count(r.Rooms), rs.ReadySeconds, snap, count(rs.RoomsAfter), size(float64(rs.RSSAfter)), size(ratio(float64(rs.RSSAfter-r.Baseline.RSS[rs.Node]), float64(r.Rooms-r.Baseline.Rooms))))
	}

	fmt.Fprintln(w, "\n**Ratios** (within this run):")
	fmt.Fprintln(w)
	for _, line := range ratios(r) {
		fmt.Fprintln(w, "- "+line)
	}
	fmt.Fprintln(w)
}

// ratios compares the largest size with the smallest.
func ratios(r *Result) []string {
	var out []string
	first, last := r.Steps[0], r.Steps[len(r.Steps)-1]
	if first == last {
		return []string{"one size only: no ratios"}
	}
	at := fmt.Sprintf("at %s ÷ at %s rooms", count(last.Rooms), count(first.Rooms))
	out = append(out,
		fmt.Sprintf("page 1 /s %s: %s (p50 %s; server CPU per page %s)", at, x(last.Page1.PerSec, first.Page1.PerSec), x(last.Page1.P50Ms, first.Page1.P50Ms),
			x(last.Page1.CPUPerOpUs, first.Page1.CPUPerOpUs)),
		fmt.Sprintf("deep page /s %s: %s (p50 %s)", at, x(last.DeepPage.PerSec, first.DeepPage.PerSec), x(last.DeepPage.P50Ms, first.DeepPage.P50Ms)),
		fmt.Sprintf("GET /v2/rooms/{id} /s %s: %s (p99 %s)", at, x(last.Get.PerSec, first.Get.PerSec), x(last.Get.P99Ms, first.Get.P99Ms)))
	if last.GetUnderList != nil {
		out = append(out, fmt.Sprintf("GET p99 while listing ÷ GET p99 alone, at %s rooms: %s; at %s rooms: %s", count(first.Rooms),
			x(first.GetUnderList.P99Ms, first.Get.P99Ms), count(last.Rooms), x(last.GetUnderList.P99Ms, last.Get.P99Ms)))
	}
	if first.Writes != nil && last.Writes != nil {
		out = append(out, fmt.Sprintf("creates/s %s: %s; server CPU per create: %s; disk written per create: %s; p99: %s", at, x(last.Writes.PerSec, first.Writes.PerSec),
			x(last.Writes.CPUPerOpUs, first.Writes.CPUPerOpUs), x(last.Writes.DiskPerOp, first.Writes.DiskPerOp), x(last.Writes.P99Ms, first.Writes.P99Ms)))
	}
	if len(r.Restarts) > 1 {
		a, b := r.Restarts[0], r.Restarts[len(r.Restarts)-1]
		out = append(out, fmt.Sprintf("restart to ready at %s ÷ at %s rooms: %s", count(b.Rooms), count(a.Rooms), x(b.ReadySeconds, a.ReadySeconds)))
	}
	if first.Fill.N > 0 && last.Fill.N > 0 {
		out = append(out, fmt.Sprintf("creates/s, last fill ÷ first fill: %s; disk written per create: %s; p99: %s", x(last.Fill.PerSec, first.Fill.PerSec),
			x(last.Fill.DiskPerOp, first.Fill.DiskPerOp), x(last.Fill.P99Ms, first.Fill.P99Ms)))
	}
	if last.SeqFollower != nil {
		out = append(out, fmt.Sprintf("sequential writes, follower p50 ÷ leader p50: %s at %s rooms, %s at %s rooms", x(first.SeqFollower.P50Ms, first.SeqLeader.P50Ms),
			count(first.Rooms), x(last.SeqFollower.P50Ms, last.SeqLeader.P50Ms), count(last.Rooms)))
	}
	return out
}

func window(r *Result) string {
	for _, s := range r.Steps {
		if s.Writes != nil {
			return fmt.Sprintf("%.0f s", s.Writes.Seconds)
		}
	}
	return "–"
}

func extraWrites(s *Step) int {
	n := 0
	for _, p := range []*Phase{s.Writes, s.SeqLeader, s.SeqFollower, s.FollowerWrite} {
		if p != nil {
			n += p.N
		}
	}
	return n
}

func lastTimeline(r *Result) []Bin {
	for i := len(r.Steps) - 1; i >= 0; i-- {
		if tl := r.Steps[i].Fill.Timeline; len(tl) > 1 {
			return tl
		}
	}
	return nil
}

func roundSecs(tl []Bin) int {
	if len(tl) == 0 {
		return 0
	}
	return int(tl[0].Seconds + 0.5)
}

func nth(n int) string {
	step := max(1, (n+9)/10)
	if step == 1 {
		return "one"
	}
	return fmt.Sprintf("%d%s", step, ordinal(step))
}

func ordinal(n int) string {
	switch {
	case n%100 >= 11 && n%100 <= 13:
		return "th"
	case n%10 == 2:
		return "nd"
	case n%10 == 3:
		return "rd"
	}
	return "th"
}

func nodeNames(r *Result) []string {
	var out []string
	for _, n := range r.Nodes {
		out = append(out, n.Name)
	}
	sort.Strings(out)
	return out
}

func rate(p Phase) string {
	if p.N == 0 {
		return "–"
	}
	return fmt.Sprintf("%s (%.2f / %.1f)", count(int(p.PerSec+0.5)), p.P50Ms, p.P99Ms)
}

func x(a, b float64) string {
	if b == 0 {
		return "–"
	}
	if v := a / b; v < 0.1 {
		return fmt.Sprintf("%.2g× (1/%.0f)", v, b/a)
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// count prints 1234567 as 1,234,567.
func count(n int) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// size prints bytes in B, KiB, MiB or GiB.
func size(v float64) string {
	a := v
	if a < 0 {
		a = -a
	}
	switch {
	case a >= 1<<30:
		return fmt.Sprintf("%.2f GiB", v/(1<<30))
	case a >= 1<<20:
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	case a >= 1<<10:
		return fmt.Sprintf("%.1f KiB", v/(1<<10))
	}
	return fmt.Sprintf("%.0f B", v)
}

// deviceSize is a phase's device bytes per request, "–" when unknown.
func deviceSize(p Phase) string {
	if p.DevicePerOp > 0 {
		return size(p.DevicePerOp)
	}
	return "–"
}

// targetP99Ms is issue 10's p99 for creates (control.sh prints the targets).
const targetP99Ms = 20

// stallSummary counts the stretches that missed issue 10's p99 and names the
// slowest request of the fill with when its stretch ended, so a stall can be
// lined up with the nodes' logs.
func stallSummary(tl []Bin) string {
	over, worst := 0, tl[0]
	for _, b := range tl {
		if b.P99Ms > targetP99Ms {
			over++
		}
		if b.MaxMs > worst.MaxMs {
			worst = b
		}
	}
	s := fmt.Sprintf("Stretches with a p99 over %d ms: %d of %d.", targetP99Ms, over, len(tl))
	if worst.MaxMs > 0 {
		s += fmt.Sprintf(" Slowest request: %.0f ms, in the stretch that ended at %s with %s rooms.", worst.MaxMs, worst.End.Format("15:04:05"), count(worst.Rooms))
	}
	return s
}
