#!/usr/bin/env bash
# Cascade cost on the fan-out benchmark (docs/benchmarks.md, "Cascade"):
# 1 publisher on edge A (eu-west), N subscribers all on A ("single") or
# split over A and edge B in a far region (ca-east, "cascade"), then the
# time to re-place FAILOVER_SUBS subscribers after their edge is killed
# with SIGKILL. Real processes: one `meridian control --bootstrap` and two
# (failover: three) `meridian edge`, all pinned to CPU 0; the load
# generator (`loadgen cascade`) on CPU 1. Numbers and ratios only; nothing
# here passes or fails on performance.
#
#   benchmarks/cascade.sh                  # rows 10 50 100 (single + cascade) + failover of 100, ~3 minutes
#   QUICK=1 benchmarks/cascade.sh          # rows 10 50 + failover of 100, ~2 minutes
#   ROWS="25 75" FAILOVER_SUBS=0 ...       # any rows, no failover row
#   ROWS=none FAILOVER_SUBS=100 ...        # the failover row only
#   WINDOW=10s FEEDBACK=rr,twcc            # loadgen -window / -feedback
#   LOG_LEVEL=info                         # server log level (logs are kept in the results)
#   DIAG=1                                 # build with benchmarks/pprof (a pprof listener per edge) and save
#                                          # the edges' goroutine dumps when a subscriber gets < 90 %
#
# Each row (and each mode within it) gets a fresh control plane and fresh
# edges. Modes alternate within a row (single, then cascade), so drift on
# the machine affects both. Results: benchmarks/results/<UTC stamp>-cascade/
# (one JSON file per row, the servers' logs, table.md).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

if [[ "${QUICK:-0}" == 1 ]]; then
	ROWS=${ROWS:-"10 50"}
else
	ROWS=${ROWS:-"10 50 100"}
fi
[[ "$ROWS" == none ]] && ROWS=""
FAILOVER_SUBS=${FAILOVER_SUBS:-100}
WINDOW=${WINDOW:-10s}
FEEDBACK=${FEEDBACK:-rr,twcc}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
NEAR=${NEAR_REGION:-eu-west}
FAR=${FAR_REGION:-ca-east}

KEY=bench-key
SECRET=bench-secret-0123456789abcdef0123456789abcdef
EDGE_TOKEN=bench-edge-token-0123456789abcdef
ADMIN_TOKEN=bench-admin-token-0123456789abcdef
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS="$ROOT/benchmarks/results/$STAMP-cascade"
WORK=$(mktemp -d /tmp/meridian-cascade.XXXXXX)
mkdir -p "$RESULTS"

PIDS=() # every server process of the current row, control plane first
reap() { # pid: wait up to 10 s (an edge drains on SIGTERM), then SIGKILL
	for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}
stop_all() {
	# Edges first, so their last reports reach the control plane.
	local i
	for ((i = 1; i < ${#PIDS[@]}; i++)); do kill "${PIDS[$i]}" 2>/dev/null || true; done
	for ((i = 1; i < ${#PIDS[@]}; i++)); do reap "${PIDS[$i]}"; done
	if [[ ${#PIDS[@]} -gt 0 ]]; then
		kill "${PIDS[0]}" 2>/dev/null || true
		reap "${PIDS[0]}"
	fi
	PIDS=()
}
cleanup() {
	stop_all
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PIN_SERVER=() PIN_LOADGEN=() MEASURE_CPU=-1
if command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
	PIN_SERVER=(taskset -c "$SERVER_CPU") PIN_LOADGEN=(taskset -c "$LOADGEN_CPU") MEASURE_CPU=$SERVER_CPU
else
	echo "warning: taskset or a second CPU is missing; servers and load generator are not pinned" >&2
fi

echo "== building meridian and the load generator (into $WORK)"
if [[ "${DIAG:-0}" == 1 ]]; then
	# A pprof listener in cmd/meridian for this build only (no change in the tree).
	printf '{"Replace": {"%s": "%s"}}\n' "$ROOT/cmd/meridian/zz_bench_pprof.go" \
		"$ROOT/benchmarks/pprof/zz_bench_pprof.go.in" >"$WORK/overlay.json"
	go build -overlay "$WORK/overlay.json" -o "$WORK/meridian" ./cmd/meridian
else
	go build -o "$WORK/meridian" ./cmd/meridian
fi
go build -o "$WORK/loadgen" ./benchmarks/loadgen
MERIDIAN="$WORK/meridian" LOADGEN="$WORK/loadgen"
freeport() { "$LOADGEN" freeport; }
# Node-to-node links (edge<->control calls, cascade leg signaling) run
# without mutual TLS on loopback, when this build asks for the choice.
INSECURE=()
if [[ $("$MERIDIAN" edge -h 2>&1 || true) == *-insecure-cluster-links* ]]; then
	INSECURE=(--insecure-cluster-links)
fi

# Ports come from `loadgen freeport`; another process on the machine can
# take one before the server binds it, so a server that dies at start is
# started again on other ports (3 attempts).

# start_control: control plane with rate limits off (every participant joins
# from 127.0.0.1 with one key) and the benchmark's API key.
start_control() {
	local raft attempt
	for attempt in 1 2 3; do
		CTL_PORT=$(freeport)
		raft=$(freeport)
		${PIN_SERVER[@]+"${PIN_SERVER[@]}"} "$MERIDIAN" control --bootstrap --id c1 --http "127.0.0.1:$CTL_PORT" \
			--raft "127.0.0.1:$raft" --data "$WORK/control-$CTL_PORT" --edge-token "$EDGE_TOKEN" --admin-token "$ADMIN_TOKEN" \
			--rate-limit-ip 0 --rate-limit-key 0 --log-level "${LOG_LEVEL:-warn}" ${INSECURE[@]+"${INSECURE[@]}"} \
			>"$WORK/control-$CTL_PORT.log" 2>&1 &
		CTL_PID=$!
		PIDS+=("$CTL_PID")
		for _ in $(seq 150); do
			if "$MERIDIAN" keys create --server "http://127.0.0.1:$CTL_PORT" --admin-token "$ADMIN_TOKEN" \
				--name bench --api-key "$KEY" --api-secret "$SECRET" >"$WORK/key.out" 2>&1; then
				return 0
			fi
			kill -0 "$CTL_PID" 2>/dev/null || break
			sleep 0.2
		done
		echo "   control plane did not start (attempt $attempt):" >&2
		cat "$WORK/control-$CTL_PORT.log" "$WORK/key.out" >&2
		stop_all
	done
	return 1
}

# start_edge id region: an edge with loopback ICE candidates, no TURN and
# gossip on a free loopback port. Sets EDGE_PID and EDGE_URL.
start_edge() {
	local id=$1 region=$2 port gossip attempt
	for attempt in 1 2 3; do
		port=$(freeport)
		gossip=$(freeport)
		EDGE_PPROF=""
		if [[ "${DIAG:-0}" == 1 ]]; then
			EDGE_PPROF="127.0.0.1:$(freeport)"
		fi
		MERIDIAN_BENCH_PPROF="$EDGE_PPROF" ${PIN_SERVER[@]+"${PIN_SERVER[@]}"} "$MERIDIAN" edge --id "$id" --region "$region" --http "127.0.0.1:$port" \
			--control "http://127.0.0.1:$CTL_PORT" --edge-token "$EDGE_TOKEN" --loopback-candidates --no-turn --data "$WORK/$id-$port-data" \
			--gossip "127.0.0.1:$gossip" --drain-timeout 2s --log-level "${LOG_LEVEL:-warn}" ${INSECURE[@]+"${INSECURE[@]}"} \
			>"$WORK/$id-$port.log" 2>&1 &
		EDGE_PID=$!
		EDGE_URL="http://127.0.0.1:$port"
		if "$LOADGEN" waitok "$EDGE_URL/healthz" "$EDGE_PID"; then
			PIDS+=("$EDGE_PID")
			return 0
		fi
		echo "   edge $id did not start (attempt $attempt):" >&2
		cat "$WORK/$id-$port.log" >&2
		kill "$EDGE_PID" 2>/dev/null || true
		reap "$EDGE_PID"
	done
	return 1
}

run_row() { # mode n
	local mode=$1 n=$2 procs edges pprofs
	if ! start_control || ! start_edge edge-a "$NEAR"; then
		echo "   row $mode N=$n skipped: servers did not start"
		stop_all
		return 0
	fi
	procs="control=$CTL_PID,edge-a=$EDGE_PID" edges="edge-a=$EDGE_URL" pprofs=""
	[[ -n "$EDGE_PPROF" ]] && pprofs="edge-a=http://$EDGE_PPROF"
	if ! start_edge edge-b "$FAR"; then
		echo "   row $mode N=$n skipped: servers did not start"
		stop_all
		return 0
	fi
	procs+=",edge-b=$EDGE_PID" edges+=",edge-b=$EDGE_URL"
	[[ -n "$EDGE_PPROF" ]] && pprofs+=",edge-b=http://$EDGE_PPROF"
	if [[ "$mode" == failover ]]; then
		# A second edge in the far region to fail over to (same gossip pool).
		if ! start_edge edge-b2 "$FAR"; then
			echo "   row $mode N=$n skipped: servers did not start"
			stop_all
			return 0
		fi
		procs+=",edge-b2=$EDGE_PID" edges+=",edge-b2=$EDGE_URL"
		[[ -n "$EDGE_PPROF" ]] && pprofs+=",edge-b2=http://$EDGE_PPROF"
	fi
	echo "== $mode N=$n (servers $procs on CPU $SERVER_CPU; load average $(cut -d' ' -f1 /proc/loadavg))"
	${PIN_LOADGEN[@]+"${PIN_LOADGEN[@]}"} "$LOADGEN" cascade -mode "$mode" -url "http://127.0.0.1:$CTL_PORT" \
		-api-key "$KEY" -api-secret "$SECRET" -procs "$procs" -edges "$edges" -subs "$n" \
		-pub-region "$NEAR" -near-region "$NEAR" -far-region "$FAR" -window "$WINDOW" -feedback "$FEEDBACK" \
		-server-cpu "$MEASURE_CPU" -json "$RESULTS/$mode-$n.json" -pprof-edges "$pprofs" -diag-dir "$RESULTS" \
		>"$WORK/loadgen.out" 2> >(grep -v 'closed pipe' >&2) || echo "   row failed (see above); continuing"
	cat "$WORK/loadgen.out"
	if [[ "$mode" == failover ]]; then
		echo "   (a \"Killed\" line from the shell is the failover's SIGKILL of an edge)"
	fi
	stop_all
	# Keep the server logs of the row (warnings and errors only).
	for f in "$WORK"/*.log; do
		[[ -s "$f" ]] && cp "$f" "$RESULTS/$mode-$n-$(basename "$f")"
	done
	rm -f "$WORK"/*.log
}

if awk -v n="$(nproc)" '{ exit !($1 > n / 2) }' /proc/loadavg; then
	echo "warning: load average $(cut -d' ' -f1 /proc/loadavg) on $(nproc) CPUs: other work is running; numbers will be noisy" >&2
fi
echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -r)"
for n in $ROWS; do
	run_row single "$n"
	run_row cascade "$n"
done
if [[ "$FAILOVER_SUBS" -gt 0 ]]; then
	run_row failover "$FAILOVER_SUBS"
fi

files=()
for n in $ROWS; do
	for m in single cascade; do
		[[ -f "$RESULTS/$m-$n.json" ]] && files+=("$RESULTS/$m-$n.json")
	done
done
[[ -f "$RESULTS/failover-$FAILOVER_SUBS.json" ]] && files+=("$RESULTS/failover-$FAILOVER_SUBS.json")
{
	echo "Cascade benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, window $WINDOW, subscriber feedback $FEEDBACK,"
	echo "publisher on edge-a ($NEAR); cascade: half the subscribers hint $FAR (edge-b); servers on CPU $SERVER_CPU, load generator on CPU $LOADGEN_CPU."
	echo "Target (not asserted): the relay leg carries one copy per track (leg bytes ≈ one subscriber's bytes)."
	echo
	if [[ ${#files[@]} -gt 0 ]]; then
		"$LOADGEN" cascade-report "${files[@]}"
	fi
} | tee "$RESULTS/table.md"
echo
echo "results: $RESULTS"
