#!/usr/bin/env bash
# Egress CPU per job (docs/egress.md, "Measured"): CPU-seconds per
# media-second of one job — composite 720p30 of a 4-person meeting, HLS
# with 3 renditions of it, one 720p track recording. Every ffmpeg the job
# starts is pinned to CPU $EGRESS_CPU (default 0) through a taskset
# wrapper; the test process (publishers, SFU, and the Go side of the job)
# to CPU $LOAD_CPU (default 1). The Go side is measured against a baseline
# run of the same publishers without the job, in the same run. Numbers
# only; nothing passes or fails on performance.
#
#   benchmarks/egress.sh                    # 10 s of media per job
#   SECONDS_PER_JOB=20 COUNT=3 benchmarks/egress.sh
#
# Results: benchmarks/results/<UTC stamp>-egress/bench.txt
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
EGRESS_CPU=${EGRESS_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
COUNT=${COUNT:-1}
OUT="benchmarks/results/$(date -u +%Y%m%dT%H%M%SZ)-egress"
mkdir -p "$OUT"
wrap=$(mktemp -d)
trap 'rm -rf "$wrap"' EXIT
ffmpeg=$(command -v ffmpeg)
cat >"$wrap/ffmpeg" <<WRAP
#!/bin/sh
exec taskset -c $EGRESS_CPU $ffmpeg "\$@"
WRAP
chmod +x "$wrap/ffmpeg"
{
	echo "# egress CPU per job, $(date -u), $(nproc) CPUs, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# ffmpeg pinned to CPU $EGRESS_CPU, publishers + SFU + Go side of the job to CPU $LOAD_CPU"
	echo "# the machine is shared: compare ratios within one run"
} | tee "$OUT/bench.txt"
EGRESS_BENCH_SECONDS=${SECONDS_PER_JOB:-10} EGRESS_BENCH_FFMPEG="$wrap/ffmpeg" \
	taskset -c "$LOAD_CPU" go test -run '^$' -bench BenchmarkEgressCPU -benchtime 1x -count "$COUNT" -timeout 30m ./edge/egress 2>&1 |
	tee -a "$OUT/bench.txt"
echo "results: $OUT/bench.txt"
