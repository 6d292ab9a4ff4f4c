#!/usr/bin/env bash
# Control-plane benchmark (docs/benchmarks.md, "Control plane"): a VideoSDK
# customer creating a room per meeting. At each store size: GET
# /v2/rooms/{id}, page 1 and the last page of GET /v2/rooms, GET while
# others list page 1, POST /v2/rooms at 16 clients, one client writing
# sequentially through the leader (and a follower), disk written per write
# (/proc/PID/io), RSS per room; the restart-to-ready time at each size and
# the snapshot at the largest. On one node (meridian dev) and on three
# `meridian control` processes. Numbers and ratios only; nothing here
# passes or fails on performance.
#
# The store gets to each size by seeding (SEED=1, the default): the nodes
# are stopped, `ctlbench seed` rebuilds each node's state from its Raft
# snapshot and log, applies CreateRoom commands for the missing rooms
# through the FSM's own Apply and writes a Raft snapshot, and the nodes are
# started again (that start is the restart-to-ready time). Every
# measurement then goes through the HTTP API of the real processes.
# SEED=0 fills through POST /v2/rooms instead (slow at large sizes; needed
# for a REV whose snapshot format this tree's seeder does not write).
#
#   benchmarks/control.sh                        # 1 and 3 nodes, 1k and 100k rooms (a few minutes)
#   SIZES="1000 100000 1000000" ...              # the 1M row too (seeding and restoring 1M rooms take a minute or two)
#   SIZES3="1000 100000" ...                     # sizes for 3 nodes (default: SIZES)
#   QUICK=1 benchmarks/control.sh                # 1k and 10k rooms, short phases (smoke)
#   REV=5a482b1 SEED=0 ...                       # build meridian from this commit (git archive), not the working tree
#   LIST_CLIENTS=4 ...                           # fewer clients for the list phases (default CLIENTS)
#   CLIENTS=16 WINDOW=5s SEQ=200 BODY=customer|empty SNAPSHOT_WAIT=2m RESTART=1 LOG_LEVEL=warn
#   PROFILE=1 ...                                # a CPU profile of every node over each size's measurements
#                                                # (SEED=1 only): results/…/pprof/nodes-N-NAME-SIZE.pprof;
#                                                # each node also serves net/http/pprof (address printed at start)
#   FILL_RATE=2000 ...                           # pace the fills (creates/s, all clients together): open loop,
#                                                # latency from each create's scheduled start (default 0:
#                                                # every client as fast as it can, closed loop)
#   NODE_GOGC="170 200 230" ...                  # GOGC of each node (c1 c2 c3; default: meridian's own)
#   GODEBUG=gctrace=1 ...                        # every node logs its collections; table.md then counts the
#                                                # last fill's stretches by which nodes were marking in them
#
# Servers run on CPU 0 (taskset -c 0; all three nodes share it), the load
# client on CPU 1. Rate limits are off (--rate-limit-ip 0 --rate-limit-key 0).
# Results: benchmarks/results/<UTC stamp>-control/ (one JSON file per
# topology, the servers' logs, table.md).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

if [[ "${QUICK:-0}" == 1 ]]; then
	SIZES=${SIZES:-"1000 10000"}
	WINDOW=${WINDOW:-2s}
	SEQ=${SEQ:-50}
	SNAPSHOT_WAIT=${SNAPSHOT_WAIT:-10s}
else
	SIZES=${SIZES:-"1000 100000"}
	WINDOW=${WINDOW:-5s}
	SEQ=${SEQ:-200}
	SNAPSHOT_WAIT=${SNAPSHOT_WAIT:-2m}
fi
SEED=${SEED:-1}
PROFILE=${PROFILE:-0}
SIZES3=${SIZES3:-$SIZES}
NODES=${NODES:-"1 3"}
CLIENTS=${CLIENTS:-16}
FILL_RATE=${FILL_RATE:-0}
LIST_CLIENTS=${LIST_CLIENTS:-$CLIENTS}
BODY=${BODY:-customer}
RESTART=${RESTART:-1}
LOG_LEVEL=${LOG_LEVEL:-warn}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}

KEY=bench-key
SECRET=bench-secret-0123456789abcdef0123456789abcdef
ADMIN_TOKEN=bench-admin-token-0123456789abcdef
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS="$ROOT/benchmarks/results/$STAMP-control"
WORK=$(mktemp -d /tmp/meridian-control.XXXXXX)
mkdir -p "$RESULTS"

PIDS=() # running server processes, by node index
stop_all() {
	local p
	for p in ${PIDS[@]+"${PIDS[@]}"}; do kill "$p" 2>/dev/null || true; done
	for p in ${PIDS[@]+"${PIDS[@]}"}; do
		for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	PIDS=()
}
keep_logs() { # prefix
	local f
	for f in "$WORK"/*.log; do
		[[ -s "$f" ]] && cp "$f" "$RESULTS/$1-$(basename "$f")"
	done
	rm -f "$WORK"/*.log
}
cleanup() {
	stop_all
	# A run that stops early keeps its servers' logs (a node that did not
	# come back is only explained there).
	[[ -d "$RESULTS" ]] && keep_logs "unfinished"
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PIN_SERVER=() PIN_CLIENT=() MEASURE_CPU=-1
if command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
	PIN_SERVER=(taskset -c "$SERVER_CPU") PIN_CLIENT=(taskset -c "$CLIENT_CPU") MEASURE_CPU=$SERVER_CPU
else
	echo "warning: taskset or a second CPU is missing; servers and client are not pinned" >&2
fi

# GODEBUG (e.g. gctrace=1) is for the servers only (start_node passes it
# on): the load client would trace its own collections into the results, and
# a compiler run with it prints traces that Go's build cache keeps and
# replays in every later build of the same package.
SERVER_GODEBUG=${GODEBUG:-}
unset GODEBUG

echo "== building meridian${REV:+ at $REV} and ctlbench (into $WORK)"
# PROFILE=1: the benchmark's profiling hooks (benchmarks/pprof) built into
# this binary only, nothing in the tree.
overlay() { # source dir → go build flags
	[[ "$PROFILE" == 1 ]] || return 0
	printf '{"Replace": {"%s/cmd/meridian/zz_bench_pprof.go": "%s/benchmarks/pprof/zz_bench_pprof.go.in"}}\n' "$1" "$ROOT" >"$WORK/overlay.json"
	echo "-overlay=$WORK/overlay.json"
}
if [[ -n "${REV:-}" ]]; then
	mkdir -p "$WORK/src"
	git archive "$REV" | tar -x -C "$WORK/src"
	# shellcheck disable=SC2046
	(cd "$WORK/src" && go build $(overlay "$WORK/src") -o "$WORK/meridian" ./cmd/meridian)
	BUILT="commit $(git rev-parse --short "$REV")"
	rm -rf "$WORK/src"
else
	# shellcheck disable=SC2046
	go build $(overlay "$ROOT") -o "$WORK/meridian" ./cmd/meridian
	BUILT="working tree at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo ' with uncommitted changes')"
fi
go build -o "$WORK/ctlbench" ./benchmarks/ctlbench
MERIDIAN="$WORK/meridian" CTLBENCH="$WORK/ctlbench"
freeport() { "$CTLBENCH" freeport; }
INSECURE=()
if [[ $("$MERIDIAN" control -h 2>&1 || true) == *-insecure-cluster-links* ]]; then
	INSECURE=(--insecure-cluster-links) # Raft and forwarded writes on loopback without mTLS
fi

# Every node's command line, so a node can be started again the same way.
declare -a NAMES=() URLS=() DATAS=() ARGS=() PPROF=()

start_node() { # index: start NAMES[i] with ARGS[i] (a string of words without spaces inside)
	local i=$1 env=(env) gogc=()
	if [[ "$PROFILE" == 1 ]]; then
		mkdir -p "$WORK/pprof-${NAMES[$i]}"
		rm -f "$WORK/pprof-${NAMES[$i]}"/cpu-*.pprof
		env+=("MERIDIAN_BENCH_CPUPROFILE_DIR=$WORK/pprof-${NAMES[$i]}")
		# and net/http/pprof (heap, allocations) for a look during the run
		PPROF[$i]=${PPROF[$i]:-127.0.0.1:$(freeport)}
		env+=("MERIDIAN_BENCH_PPROF=${PPROF[$i]}")
		echo "   ${NAMES[$i]}: pprof at http://${PPROF[$i]}/debug/pprof/"
	fi
	read -r -a gogc <<<"${NODE_GOGC:-}"
	if [[ -n "${gogc[$i]:-}" ]]; then env+=("GOGC=${gogc[$i]}"); fi
	if [[ -n "$SERVER_GODEBUG" ]]; then env+=("GODEBUG=$SERVER_GODEBUG"); fi
	# gctrace places a collection in seconds from the process's start; the
	# report (ctlbench collections.go) reads this line to place it in time.
	echo "meridian-bench: started $(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" >>"$WORK/${NAMES[$i]}.log"
	# shellcheck disable=SC2086
	${PIN_SERVER[@]+"${PIN_SERVER[@]}"} ${env[@]+"${env[@]}"} "$MERIDIAN" ${ARGS[$i]} >>"$WORK/${NAMES[$i]}.log" 2>&1 &
	PIDS[$i]=$!
}

# profile_toggle starts (or ends) a CPU profile segment on every node.
profile_toggle() {
	local p
	[[ "$PROFILE" == 1 ]] || return 0
	for p in "${PIDS[@]}"; do kill -USR1 "$p" 2>/dev/null || true; done
}

# profile_keep moves every node's finished segment to the results: prefix-NAME-label.pprof.
profile_keep() { # prefix label
	local i f
	[[ "$PROFILE" == 1 ]] || return 0
	mkdir -p "$RESULTS/pprof"
	sleep 1 # the segment is written after the signal
	for i in "${!NAMES[@]}"; do
		for f in "$WORK/pprof-${NAMES[$i]}"/cpu-*.pprof; do
			[[ -s "$f" ]] && mv "$f" "$RESULTS/pprof/$1-${NAMES[$i]}-$2.pprof"
		done
	done
}

node_flags() { # the -node flags for ctlbench
	local i out=()
	for i in "${!NAMES[@]}"; do out+=(-node "${NAMES[$i]}=${URLS[$i]},${PIDS[$i]},${DATAS[$i]}"); done
	echo "${out[@]}"
}

# start_dev / start_cluster set NAMES, URLS, DATAS, ARGS and PIDS; 3 attempts
# each, because another process can take a free port before a node binds it.
start_dev() {
	local attempt http raft
	for attempt in 1 2 3; do
		http=$(freeport) raft=$(freeport)
		NAMES=(dev) URLS=("http://127.0.0.1:$http") DATAS=("$WORK/dev-$http")
		ARGS=("dev --http 127.0.0.1:$http --raft 127.0.0.1:$raft --data ${DATAS[0]} --api-key $KEY --api-secret $SECRET --admin-token $ADMIN_TOKEN
			--turn-udp 127.0.0.1:0 --turn-tcp 127.0.0.1:0 --rate-limit-ip 0 --rate-limit-key 0 --log-level $LOG_LEVEL")
		start_node 0
		# shellcheck disable=SC2046
		if "$CTLBENCH" leader $(node_flags) >/dev/null; then
			return 0
		fi
		echo "   meridian dev did not start (attempt $attempt):" >&2
		tail -n 20 "$WORK/dev.log" >&2
		stop_all
		rm -rf "${DATAS[0]}"
	done
	return 1
}

start_cluster() {
	local attempt i peers key raft=()
	key=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
	for attempt in 1 2 3; do
		NAMES=(c1 c2 c3) URLS=() DATAS=() ARGS=() raft=() peers=""
		for i in 0 1 2; do
			URLS+=("http://127.0.0.1:$(freeport)")
			raft+=("127.0.0.1:$(freeport)")
			DATAS+=("$WORK/${NAMES[$i]}-$attempt")
			peers+="${peers:+,}${NAMES[$i]}=${raft[$i]}"
		done
		for i in 0 1 2; do
			ARGS+=("control --id ${NAMES[$i]} --http ${URLS[$i]#http://} --raft ${raft[$i]} --raft-advertise ${raft[$i]} --data ${DATAS[$i]}
				--bootstrap --peers $peers --cluster-key $key --admin-token $ADMIN_TOKEN
				--rate-limit-ip 0 --rate-limit-key 0 --log-level $LOG_LEVEL ${INSECURE[*]}")
			start_node "$i"
		done
		# shellcheck disable=SC2046
		if "$CTLBENCH" leader $(node_flags) >/dev/null; then
			for _ in $(seq 100); do
				if "$MERIDIAN" keys create --server "${URLS[0]}" --admin-token "$ADMIN_TOKEN" --name bench \
					--api-key "$KEY" --api-secret "$SECRET" >"$WORK/key.out" 2>&1; then
					return 0
				fi
				sleep 0.2
			done
			cat "$WORK/key.out" >&2
		fi
		echo "   the 3-node cluster did not start (attempt $attempt):" >&2
		for i in 0 1 2; do tail -n 10 "$WORK/${NAMES[$i]}.log" >&2 || true; done
		stop_all
		rm -rf "${DATAS[@]}"
	done
	return 1
}

# run_seeded measures each size after seeding the stopped nodes to it.
run_seeded() { # json label sizes
	local json=$1 label=$2 sizes=$3 size seeded=0 since i dirs=() args
	for i in "${!NAMES[@]}"; do dirs+=(-data "${DATAS[$i]}"); done
	# shellcheck disable=SC2046
	"$CTLBENCH" run $(node_flags) -api-key "$KEY" -api-secret "$SECRET" -baseline-only -clients "$CLIENTS" -list-clients "$LIST_CLIENTS" \
		-body "$BODY" -label "$label, $BUILT" -json "$json"
	for size in $sizes; do
		# shellcheck disable=SC2046
		"$CTLBENCH" idle $(node_flags)
		stop_all
		echo "== seed to $size rooms"
		seeded=$("$CTLBENCH" seed "${dirs[@]}" -api-key "$KEY" -rooms "$size" -seeded "$seeded" -body "$BODY" -json "$json")
		since=$(date +%s%N)
		for i in "${!NAMES[@]}"; do start_node "$i"; done
		${PIN_CLIENT[@]+"${PIN_CLIENT[@]}"} "$CTLBENCH" ready -seeded-start -node "${NAMES[0]}=${URLS[0]},${PIDS[0]},${DATAS[0]}" \
			-since "$since" -api-key "$KEY" -api-secret "$SECRET" -json "$json"
		profile_toggle
		# shellcheck disable=SC2046
		${PIN_CLIENT[@]+"${PIN_CLIENT[@]}"} "$CTLBENCH" run $(node_flags) -append -api-key "$KEY" -api-secret "$SECRET" -seeded "$seeded" \
			-sizes "$size" -clients "$CLIENTS" -list-clients "$LIST_CLIENTS" -fill-rate "$FILL_RATE" -window "$WINDOW" -seq "$SEQ" -body "$BODY" \
			-server-cpu "$MEASURE_CPU" -snapshot-wait 0 -label "$label, $BUILT" -json "$json"
		profile_toggle
		profile_keep "$(basename "$json" .json)" "$size"
	done
	if [[ "$SNAPSHOT_WAIT" != 0 ]]; then
		# The snapshot at the largest size, taken by the servers themselves:
		# started again with a low threshold, each takes one at once.
		# shellcheck disable=SC2046
		"$CTLBENCH" idle $(node_flags)
		stop_all
		args=("${ARGS[@]}")
		for i in "${!NAMES[@]}"; do
			ARGS[$i]+=" --raft-snapshot-threshold 1 --raft-snapshot-interval 1s"
			start_node "$i"
		done
		ARGS=("${args[@]}")
		echo "== snapshots at the largest size (servers restarted with --raft-snapshot-threshold 1)"
		# shellcheck disable=SC2046
		"$CTLBENCH" idle $(node_flags)
		# shellcheck disable=SC2046
		"$CTLBENCH" run $(node_flags) -append -snapshots-only -api-key "$KEY" -api-secret "$SECRET" -seeded "$seeded" \
			-snapshot-wait "$SNAPSHOT_WAIT" -snapshot-cover 0.99 -label "$label, $BUILT" -json "$json"
	fi
}

run_topology() { # nodes sizes
	local n=$1 sizes=$2 label json victim i
	if [[ "$n" == 1 ]]; then
		label="1 node (meridian dev)"
		start_dev
	else
		label="3 nodes (meridian control)"
		start_cluster
	fi
	json="$RESULTS/nodes-$n.json"
	echo "== $label: sizes ${sizes// /, }; servers ${PIDS[*]} on CPU $SERVER_CPU; load average $(cut -d' ' -f1 /proc/loadavg)"
	if [[ "$SEED" == 1 ]]; then
		run_seeded "$json" "$label" "$sizes"
		stop_all
		keep_logs "nodes-$n"
		rm -rf "${DATAS[@]}"
		return
	fi
	# shellcheck disable=SC2046
	${PIN_CLIENT[@]+"${PIN_CLIENT[@]}"} "$CTLBENCH" run $(node_flags) -api-key "$KEY" -api-secret "$SECRET" \
		-sizes "${sizes// /,}" -clients "$CLIENTS" -list-clients "$LIST_CLIENTS" -fill-rate "$FILL_RATE" -window "$WINDOW" -seq "$SEQ" -body "$BODY" \
		-server-cpu "$MEASURE_CPU" -snapshot-wait "$SNAPSHOT_WAIT" -label "$label, $BUILT" -json "$json"
	if [[ "$RESTART" == 1 ]]; then
		# Kill a follower (the only node on one node) and time it back to ready.
		# shellcheck disable=SC2046
		local leader
		leader=$("$CTLBENCH" leader $(node_flags))
		victim=0
		for i in "${!NAMES[@]}"; do
			if [[ "${NAMES[$i]}" != "$leader" ]]; then victim=$i; break; fi
		done
		echo "== restart: SIGKILL ${NAMES[$victim]} (pid ${PIDS[$victim]}), start it again, wait for /healthz 200"
		kill -9 "${PIDS[$victim]}"
		wait "${PIDS[$victim]}" 2>/dev/null || true
		local since
		since=$(date +%s%N)
		start_node "$victim"
		${PIN_CLIENT[@]+"${PIN_CLIENT[@]}"} "$CTLBENCH" ready -node "${NAMES[$victim]}=${URLS[$victim]},${PIDS[$victim]},${DATAS[$victim]}" \
			-since "$since" -api-key "$KEY" -api-secret "$SECRET" -snapshot-before "${DATAS[$victim]}" -json "$json"
	fi
	stop_all
	keep_logs "nodes-$n"
	rm -rf "${DATAS[@]}"
}

if awk -v n="$(nproc)" '{ exit !($1 > n / 2) }' /proc/loadavg; then
	echo "warning: load average $(cut -d' ' -f1 /proc/loadavg) on $(nproc) CPUs: other work is running; numbers will be noisy" >&2
fi
echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -r); meridian: $BUILT"
files=()
for n in $NODES; do
	case $n in
	1) run_topology 1 "$SIZES" ;;
	3) run_topology 3 "$SIZES3" ;;
	*) echo "NODES: 1 and/or 3, not $n" >&2; exit 2 ;;
	esac
	files+=("$RESULTS/nodes-$n.json")
done
{
	echo "Control-plane benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), meridian from the $BUILT; servers on CPU $SERVER_CPU, client on CPU $CLIENT_CPU."
	echo "Targets (issue 10, not asserted): page 1 p50 <= 2 ms at 1M rooms; >= 3,000 creates/s on 1 node and >= 2,000/s on 3, p99 <= 20 ms;"
	echo "sequential writes through a follower p50 <= 5 ms; <= 2 KB per room."
	echo
	"$CTLBENCH" report "${files[@]}"
} | tee "$RESULTS/table.md"
echo "results: $RESULTS"
