#!/usr/bin/env bash
# Fan-out benchmark: 1 publisher (~200 pkt/s VP8-shaped video + Opus) -> N
# subscribers, Meridian vs a trivial pion forwarder, on this machine, in
# this run. See docs/benchmarks.md. Numbers and ratios only; nothing here
# passes or fails on performance.
#
#   benchmarks/run.sh                 # rows 10 50 100 250, ~4 minutes
#   QUICK=1 benchmarks/run.sh         # rows 10 50 (smoke)
#   ROWS="25 75" benchmarks/run.sh    # any rows
#   BASELINE=0 ...                    # Meridian only
#   PROFILE=1 ...                     # also save server pprof profiles per row
#   WINDOW=10s FEEDBACK=rr,twcc       # loadgen -window / -feedback
#
# The server runs on CPU 0 (taskset -c 0) and the load generator on CPU 1.
# Each row gets a fresh server process, so its RSS delta is not hidden by
# memory the previous row freed.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

if [[ "${QUICK:-0}" == 1 ]]; then
	ROWS=${ROWS:-"10 50"}
else
	ROWS=${ROWS:-"10 50 100 250"}
fi
WINDOW=${WINDOW:-10s}
FEEDBACK=${FEEDBACK:-rr,twcc}
BASELINE=${BASELINE:-1}
PROFILE=${PROFILE:-0}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}

KEY=bench-key
SECRET=bench-secret-0123456789abcdef0123456789abcdef
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS="$ROOT/benchmarks/results/$STAMP"
WORK=$(mktemp -d /tmp/meridian-bench.XXXXXX)
mkdir -p "$RESULTS"

SERVER_PID=""
cleanup() {
	if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
		kill "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Pinning prefixes (taskset execs the command, so $! is the server's own pid).
PIN_SERVER=() PIN_LOADGEN=() MEASURE_CPU=-1
if command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
	PIN_SERVER=(taskset -c "$SERVER_CPU") PIN_LOADGEN=(taskset -c "$LOADGEN_CPU") MEASURE_CPU=$SERVER_CPU
else
	echo "warning: taskset or a second CPU is missing; server and load generator are not pinned" >&2
fi

echo "== building bin/meridian and the load generator"
if [[ "$PROFILE" == 1 ]]; then
	# Add a pprof listener to cmd/meridian for this build only (no change in the tree).
	cat >"$WORK/overlay.json" <<EOF
{"Replace": {"$ROOT/cmd/meridian/zz_bench_pprof.go": "$ROOT/benchmarks/pprof/zz_bench_pprof.go.in"}}
EOF
	go build -overlay "$WORK/overlay.json" -o bin/meridian ./cmd/meridian
else
	go build -o bin/meridian ./cmd/meridian
fi
go build -o "$WORK/loadgen" ./benchmarks/loadgen
LOADGEN="$WORK/loadgen"

wait_log() { # file pattern pid
	for _ in $(seq 300); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		kill -0 "$3" 2>/dev/null || { cat "$1"; return 1; }
		sleep 0.1
	done
	cat "$1"
	return 1
}

start_meridian() {
	PORT=$("$LOADGEN" freeport)
	local data="$WORK/data-$PORT"
	if [[ "$PROFILE" == 1 ]]; then
		PPROF_PORT=$("$LOADGEN" freeport)
		export MERIDIAN_BENCH_PPROF="127.0.0.1:$PPROF_PORT"
	fi
	# Rate limits off: every participant joins from 127.0.0.1 with one key.
	${PIN_SERVER[@]+"${PIN_SERVER[@]}"} ./bin/meridian dev --http "127.0.0.1:$PORT" --data "$data" \
		--api-key "$KEY" --api-secret "$SECRET" --turn-udp 127.0.0.1:0 --turn-tcp 127.0.0.1:0 \
		--rate-limit-ip 0 --rate-limit-key 0 --log-level warn >"$WORK/server-$PORT.log" 2>&1 &
	SERVER_PID=$!
	wait_log "$WORK/server-$PORT.log" "Meridian dev is running" "$SERVER_PID"
}

start_baseline() {
	PORT=$("$LOADGEN" freeport)
	${PIN_SERVER[@]+"${PIN_SERVER[@]}"} "$LOADGEN" baseline-server -http "127.0.0.1:$PORT" >"$WORK/server-$PORT.log" 2>&1 &
	SERVER_PID=$!
	wait_log "$WORK/server-$PORT.log" "listening" "$SERVER_PID"
}

stop_server() {
	kill "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=""
}

run_row() { # target n
	local target=$1 n=$2 args=()
	if [[ "$target" == meridian ]]; then
		start_meridian
		args=(-target meridian -api-key "$KEY" -api-secret "$SECRET")
		if [[ "$PROFILE" == 1 ]]; then
			args+=(-pprof "http://127.0.0.1:$PPROF_PORT" -pprof-dir "$RESULTS")
		fi
	else
		start_baseline
		args=(-target baseline)
	fi
	echo "== $target N=$n (server pid $SERVER_PID on CPU $SERVER_CPU; load average $(cut -d' ' -f1 /proc/loadavg))"
	# pion's twcc interceptor logs harmless "closed pipe" errors when hundreds
	# of PeerConnections close at once; keep everything else.
	${PIN_LOADGEN[@]+"${PIN_LOADGEN[@]}"} "$LOADGEN" "${args[@]}" -url "http://127.0.0.1:$PORT" -pid "$SERVER_PID" \
		-subs "$n" -window "$WINDOW" -idle 2s -settle 1s -server-cpu "$MEASURE_CPU" -feedback "$FEEDBACK" -json "$RESULTS/$target-$n.json" \
		>"$WORK/loadgen.out" 2> >(grep -v 'closed pipe' >&2) || echo "   row failed (see above); continuing"
	tail -n 1 "$WORK/loadgen.out"
	stop_server
}

# Other work on the machine shows up in the "other load on server core" column;
# a loaded machine makes rows incomparable.
if awk -v n="$(nproc)" '{ exit !($1 > n / 2) }' /proc/loadavg; then
	echo "warning: load average $(cut -d' ' -f1 /proc/loadavg) on $(nproc) CPUs: other work is running; numbers will be noisy" >&2
fi
echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -r)"
for n in $ROWS; do
	# Alternate servers row by row so drift (thermal, neighbours) hits both.
	if [[ "$BASELINE" == 1 ]]; then
		run_row baseline "$n"
	fi
	run_row meridian "$n"
done

files=()
for n in $ROWS; do
	for t in baseline meridian; do
		[[ -f "$RESULTS/$t-$n.json" ]] && files+=("$RESULTS/$t-$n.json")
	done
done
{
	echo "Fan-out benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, window $WINDOW, subscriber feedback $FEEDBACK"
	echo "Design targets (not asserted): <= 9 µs server CPU per forwarded packet, <= 300 KB per video subscriber."
	echo
	"$LOADGEN" report "${files[@]}"
} | tee "$RESULTS/table.md"
echo
echo "results: $RESULTS"
