#!/usr/bin/env bash
# Fan-out benchmark: 1 publisher (~200 pkt/s VP8-shaped video + Opus) -> N
# subscribers, Meridian against its peers LiveKit and Janus and a trivial
# pion forwarder, on this machine, in this run, with one load generator.
# See docs/benchmarks.md. Numbers and ratios only; nothing here passes or
# fails on performance.
#
#   benchmarks/run.sh                 # rows 50 100 250, six servers, ~12 minutes
#   QUICK=1 benchmarks/run.sh         # rows 10 50 (smoke)
#   ROWS="25 75" benchmarks/run.sh    # any rows
#   SERVERS="meridian livekit" ...    # any of: baseline meridian livekit
#                                     # livekit-twcc livekit-batchio janus
#                                     # janus-loops1 meridian-pionsend
#                                     # (see benchmarks/README.md)
#   BASELINE=0 ...                    # without the trivial forwarder
#   PROFILE=1 ...                     # also save Meridian's pprof profiles per row
#   WINDOW=10s FEEDBACK=rr,twcc       # loadgen -window / -feedback
#   LOADGEN_ARGS="-pkts-per-frame 10" # more load per subscriber (here 350
#                                     # pkt/s), e.g. to put a server at half
#                                     # a core for the latency target
#   EDGE_GOGC=100 EDGE_GOMAXPROCS=2   # the Meridian edge's GOGC / GOMAXPROCS (default: its own,
#                                     # cmd/meridian/gc.go and procs.go)
#   EDGE_ARGS="--event-linger 0"      # more flags for the Meridian edge
#
# Every server runs on CPU 0 (taskset -c 0) and the load generator on CPU 1.
# Meridian runs as it is deployed: a `meridian control` and a `meridian edge`
# process, both on CPU 0, each with its own runtime settings (cmd/meridian:
# GOGC, GOMAXPROCS); server CPU is the sum of the two, memory (RSS, heap,
# goroutines per subscriber) the edge's: what a subscriber costs the media
# server (the control plane's records per participant are measured by the
# control-plane benchmark).
# Each row gets a fresh server process, so its RSS delta is not hidden by
# memory the previous row freed. Rows alternate between servers at every N,
# so drift on the machine hits all of them. A server that cannot be
# installed or started is reported as missing in the table, with the reason.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

if [[ "${QUICK:-0}" == 1 ]]; then
	ROWS=${ROWS:-"10 50"}
else
	ROWS=${ROWS:-"50 100 250"}
fi
SERVERS=${SERVERS:-"baseline meridian livekit livekit-twcc janus janus-loops1"}
WINDOW=${WINDOW:-10s}
FEEDBACK=${FEEDBACK:-rr,twcc}
BASELINE=${BASELINE:-1}
PROFILE=${PROFILE:-0}
read -r -a EXTRA_ARGS <<<"${LOADGEN_ARGS:-}"
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
if [[ "$BASELINE" != 1 ]]; then
	SERVERS=$(tr ' ' '\n' <<<"$SERVERS" | grep -vx baseline | paste -sd' ' -)
fi
for s in $SERVERS; do
	case $s in
	baseline | meridian | meridian-pionsend | livekit | livekit-twcc | livekit-batchio | janus | janus-loops1) ;;
	*)
		echo "unknown server $s in SERVERS" >&2
		exit 2
		;;
	esac
done

KEY=bench-key
SECRET=bench-secret-0123456789abcdef0123456789abcdef
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS="$ROOT/benchmarks/results/$STAMP"
WORK=$(mktemp -d /tmp/meridian-bench.XXXXXX)
mkdir -p "$RESULTS"

# SERVER_PID is the media server; CONTROL_PID Meridian's control plane.
SERVER_PID="" CONTROL_PID="" SERVER_URL="" METRICS_URL=""
cleanup() {
	for pid in $SERVER_PID $CONTROL_PID; do
		if kill -0 "$pid" 2>/dev/null; then
			kill "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
		fi
	done
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

# shellcheck source=peers/servers.sh
source "$ROOT/benchmarks/peers/servers.sh"
has() { [[ " $SERVERS " == *" $1"* ]]; } # a server, or the prefix of its variants

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
LOADGEN="$WORK/loadgen"
# One load generator binary for every server: with the LiveKit client when
# LiveKit is in the run (and builds), without it otherwise.
if ! { has livekit && setup_livekit_server && build_loadgen_with_livekit "$LOADGEN"; }; then
	go build -o "$LOADGEN" ./benchmarks/loadgen
fi
if has janus; then
	setup_janus || true
fi
for s in "${!MISSING[@]}"; do
	echo "warning: $s will be reported as missing: ${MISSING[$s]}" >&2
done

wait_log() { # file pattern pid
	for _ in $(seq 300); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		kill -0 "$3" 2>/dev/null || { cat "$1"; return 1; }
		sleep 0.1
	done
	cat "$1"
	return 1
}

# Node-to-node links on loopback without mutual TLS (a build that has the flag).
INSECURE=()
start_meridian() { # target
	local ctl raft edge edge_args=() cluster_key="" edge_token admin_token
	ctl=$("$LOADGEN" freeport)
	raft=$("$LOADGEN" freeport)
	edge=$("$LOADGEN" freeport)
	edge_token="edge-$RANDOM$RANDOM" admin_token="admin-$RANDOM$RANDOM"
	if [[ ${#INSECURE[@]} == 0 && $(./bin/meridian edge -h 2>&1 || true) == *-insecure-cluster-links* ]]; then
		INSECURE=(--insecure-cluster-links)
	fi
	# Rate limits off: every participant joins from 127.0.0.1 with one key.
	${PIN_SERVER[@]+"${PIN_SERVER[@]}"} ./bin/meridian control --bootstrap --id c1 --http "127.0.0.1:$ctl" \
		--raft "127.0.0.1:$raft" --data "$WORK/control-$ctl" --edge-token "$edge_token" --admin-token "$admin_token" \
		--rate-limit-ip 0 --rate-limit-key 0 --log-level warn ${INSECURE[@]+"${INSECURE[@]}"} >"$WORK/server-$ctl.log" 2>&1 &
	CONTROL_PID=$!
	SERVER_URL="http://127.0.0.1:$ctl"
	PORT=$ctl # whose log run_row shows if the start fails
	local ok=0
	for _ in $(seq 150); do
		if ./bin/meridian keys create --server "$SERVER_URL" --admin-token "$admin_token" \
			--name bench --api-key "$KEY" --api-secret "$SECRET" >"$WORK/key.out" 2>&1; then
			ok=1
			break
		fi
		kill -0 "$CONTROL_PID" 2>/dev/null || break
		sleep 0.2
	done
	if [[ $ok != 1 ]]; then
		cat "$WORK/key.out" >>"$WORK/server-$ctl.log"
		return 1
	fi
	local prof=""
	if [[ "$PROFILE" == 1 ]]; then
		PPROF_PORT=$("$LOADGEN" freeport)
		prof="127.0.0.1:$PPROF_PORT"
	fi
	# Media on loopback only (--udp-ip), as LiveKit and Janus are configured.
	# No gossip: one edge.
	local env=(env)
	if [[ -n "${EDGE_GOGC:-}" ]]; then env+=("GOGC=$EDGE_GOGC"); fi
	if [[ -n "${EDGE_GOMAXPROCS:-}" ]]; then env+=("GOMAXPROCS=$EDGE_GOMAXPROCS"); fi
	# meridian-pionsend: the same edge with subscribers' media on pion's
	# send path instead of its direct SRTP (edge/sfu/srtpdirect.go).
	if [[ "$1" == meridian-pionsend ]]; then edge_args+=(--pion-send-path); fi
	if [[ -n "${EDGE_ARGS:-}" ]]; then
		local extra
		read -ra extra <<<"$EDGE_ARGS"
		edge_args+=("${extra[@]}")
	fi
	MERIDIAN_BENCH_PPROF="$prof" "${env[@]}" ${PIN_SERVER[@]+"${PIN_SERVER[@]}"} ./bin/meridian edge --id e1 --region local \
		--http "127.0.0.1:$edge" --public-url "http://127.0.0.1:$edge" --control "$SERVER_URL" --edge-token "$edge_token" \
		--udp-ip 127.0.0.1 --loopback-candidates --turn-public-ip 127.0.0.1 --turn-udp 127.0.0.1:0 --turn-tcp 127.0.0.1:0 \
		--gossip "" --data "$WORK/edge-$edge-data" --log-level warn ${INSECURE[@]+"${INSECURE[@]}"} ${edge_args[@]+"${edge_args[@]}"} >"$WORK/server-$edge.log" 2>&1 &
	SERVER_PID=$!
	PORT=$edge
	METRICS_URL="http://127.0.0.1:$edge/metrics"
	"$LOADGEN" waitok "http://127.0.0.1:$edge/healthz" "$SERVER_PID"
}

start_baseline() {
	PORT=$("$LOADGEN" freeport)
	${PIN_SERVER[@]+"${PIN_SERVER[@]}"} "$LOADGEN" baseline-server -http "127.0.0.1:$PORT" >"$WORK/server-$PORT.log" 2>&1 &
	SERVER_PID=$!
	SERVER_URL="http://127.0.0.1:$PORT"
	wait_log "$WORK/server-$PORT.log" "listening" "$SERVER_PID"
}

stop_server() {
	for pid in $SERVER_PID $CONTROL_PID; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	SERVER_PID="" CONTROL_PID="" METRICS_URL=""
}

# kind_of SERVER: the server a variant belongs to (what MISSING is keyed by).
kind_of() {
	case $1 in
	livekit*) echo livekit ;;
	janus*) echo janus ;;
	meridian*) echo meridian ;;
	*) echo "$1" ;;
	esac
}

# missing_row SERVER N REASON: a row without numbers, kept in the table.
missing_row() {
	echo "   $1 N=$2: missing: $3"
	"$LOADGEN" missing -label "$1" -subs "$2" -reason "$3" -json "$RESULTS/$1-$2.json"
}

run_row() { # server n
	local target=$1 n=$2 kind started=0 args=()
	kind=$(kind_of "$target")
	if [[ -n "${MISSING[$kind]:-}" ]]; then
		missing_row "$target" "$n" "${MISSING[$kind]}"
		return
	fi
	case $kind in
	meridian)
		start_meridian "$target" && started=1
		args=(-target meridian -api-key "$KEY" -api-secret "$SECRET" -metrics "$METRICS_URL")
		if [[ "$PROFILE" == 1 ]]; then
			args+=(-pprof "http://127.0.0.1:$PPROF_PORT" -pprof-dir "$RESULTS")
		fi
		;;
	baseline)
		start_baseline && started=1
		args=(-target baseline)
		;;
	livekit)
		start_livekit "$target" && started=1
		args=(-target livekit -api-key "$LIVEKIT_KEY" -api-secret "$LIVEKIT_SECRET")
		;;
	janus)
		start_janus "$target" && started=1
		args=(-target janus)
		;;
	esac
	if [[ $started != 1 ]]; then
		# (colour escapes of Janus's log removed)
		missing_row "$target" "$n" "server did not start: $(tail -n 2 "$WORK/server-$PORT.log" | sed 's/\x1b\[[0-9;]*m//g' | tr '\n' ' ')"
		stop_server
		return
	fi
	echo "== $target N=$n (server pid $SERVER_PID${CONTROL_PID:+ and control plane $CONTROL_PID} on CPU $SERVER_CPU; load average $(cut -d' ' -f1 /proc/loadavg))"
	if ${PIN_LOADGEN[@]+"${PIN_LOADGEN[@]}"} "$LOADGEN" "${args[@]}" -label "$target" -url "$SERVER_URL" -pid "$SERVER_PID${CONTROL_PID:+,$CONTROL_PID}" \
		-subs "$n" -window "$WINDOW" -idle 2s -settle 1s -server-cpu "$MEASURE_CPU" -feedback "$FEEDBACK" ${EXTRA_ARGS[@]+"${EXTRA_ARGS[@]}"} -json "$RESULTS/$target-$n.json" \
		>"$WORK/loadgen.out" 2>"$WORK/loadgen.err"; then
		tail -n 1 "$WORK/loadgen.out"
		# What the generator logged (with LOADGEN_ARGS=-v: the join breakdown).
		if grep -v 'closed pipe' "$WORK/loadgen.err" >"$WORK/loadgen.log"; then
			cp "$WORK/loadgen.log" "$RESULTS/$target-$n.log"
		fi
	else
		# pion's twcc interceptor logs harmless "closed pipe" errors when
		# hundreds of PeerConnections close at once; keep everything else.
		grep -v 'closed pipe' "$WORK/loadgen.err" >&2 || true
		missing_row "$target" "$n" "row failed: $(grep -v 'closed pipe' "$WORK/loadgen.err" | tail -n 1)"
	fi
	stop_server
}

# Other work on the machine shows up in the "other load on server core" column;
# a loaded machine makes rows incomparable.
if awk -v n="$(nproc)" '{ exit !($1 > n / 2) }' /proc/loadavg; then
	echo "warning: load average $(cut -d' ' -f1 /proc/loadavg) on $(nproc) CPUs: other work is running; numbers will be noisy" >&2
fi
echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -r)"
for n in $ROWS; do
	# Alternate servers row by row so drift (thermal, neighbours) hits all.
	for s in $SERVERS; do
		run_row "$s" "$n"
	done
done

files=()
for n in $ROWS; do
	for s in $SERVERS; do
		[[ -f "$RESULTS/$s-$n.json" ]] && files+=("$RESULTS/$s-$n.json")
	done
done
versions="Meridian $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '(not a git checkout)')"
if ! git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null; then versions+=" + uncommitted changes"; fi
for k in livekit livekit-protocol janus; do
	if [[ -n "${VERSIONS[$k]:-}" ]]; then versions+=", $k ${VERSIONS[$k]}"; fi
done
versions+=", load generator on $(go list -m github.com/pion/webrtc/v4)"
{
	echo "Fan-out benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, window $WINDOW, subscriber feedback $FEEDBACK${LOADGEN_ARGS:+, loadgen $LOADGEN_ARGS}${EDGE_ARGS:+, Meridian edge $EDGE_ARGS}"
	echo "Servers: $versions."
	echo "Design targets (not asserted): <= 9 µs server CPU per forwarded packet, <= 300 KB per video subscriber."
	echo
	"$LOADGEN" report "${files[@]}"
} | tee "$RESULTS/table.md"
echo
echo "results: $RESULTS"
