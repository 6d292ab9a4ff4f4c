#!/usr/bin/env bash
# Browser join-to-first-frame: two headless Chromium pages open the meeting
# page of a fresh `meridian dev` at the same moment and each waits for the
# other's first video frame; REPS repetitions, a fresh room each. Prints
# p50/p95 and the time of every step (page load + SDK, join API, signaling,
# subscriber offer, ICE, DTLS, first keyframe, decode). Numbers only; see
# docs/benchmarks.md ("Join to first frame").
#
#   benchmarks/join.sh               # 20 repetitions
#   REPS=50 benchmarks/join.sh
#   QUERY=simulcast=0 benchmarks/join.sh  # more meeting page parameters
#   CHROMIUM=/path/to/chromium ...   # default /usr/bin/chromium
#   MERIDIAN=/path/to/meridian ...   # a prebuilt binary (e.g. from a worktree
#                                    # of another commit) instead of bin/meridian
#
# Nothing is pinned: the two browsers need both CPUs (renderer, video
# capture, encoder, decoder each), and the server runs beside them.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
REPS=${REPS:-20}
QUERY=${QUERY:-}
CHROMIUM=${CHROMIUM:-${MERIDIAN_CHROMIUM:-/usr/bin/chromium}}
KEY=bench-key
SECRET=bench-secret-0123456789abcdef0123456789abcdef
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS="$ROOT/benchmarks/results/$STAMP-join"
WORK=$(mktemp -d /tmp/meridian-join.XXXXXX)

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

if [[ ! -x "$CHROMIUM" ]]; then
	echo "chromium not found at $CHROMIUM (apt-get install -y chromium, or CHROMIUM=...)" >&2
	exit 1
fi
echo "== building bin/meridian and joinbench"
if [[ -z "${MERIDIAN:-}" ]]; then
	go build -o bin/meridian ./cmd/meridian
	MERIDIAN=./bin/meridian
	VERSION="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- 2>/dev/null || echo ' + uncommitted changes')"
else
	VERSION="$MERIDIAN"
fi
go build -o "$WORK/joinbench" ./benchmarks/joinbench
go build -o "$WORK/loadgen" ./benchmarks/loadgen # for a free port

PORT=$("$WORK/loadgen" freeport)
# Rate limits off: every page joins from 127.0.0.1 with one key.
"$MERIDIAN" dev --http "127.0.0.1:$PORT" --data "$WORK/data" \
	--api-key "$KEY" --api-secret "$SECRET" --turn-udp 127.0.0.1:0 --turn-tcp 127.0.0.1:0 \
	--rate-limit-ip 0 --rate-limit-key 0 --log-level warn >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
if ! "$WORK/loadgen" waitok "http://127.0.0.1:$PORT/healthz" "$SERVER_PID"; then
	cat "$WORK/server.log" >&2
	exit 1
fi

mkdir -p "$RESULTS"
{
	echo "Join to first frame, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), Meridian $VERSION, $("$CHROMIUM" --version 2>/dev/null | head -n1)${QUERY:+, meeting page parameters $QUERY}"
	echo
	"$WORK/joinbench" -url "http://127.0.0.1:$PORT" -api-key "$KEY" -api-secret "$SECRET" -chromium "$CHROMIUM" \
		-reps "$REPS" -query "$QUERY" -json "$RESULTS/join.json"
	echo
	echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
	# How the edge sent the pages' media: its own SRTP (edge/sfu/srtpdirect.go)
	# against every datagram on its media sockets (ICE, DTLS, RTCP included).
	curl -fsS "http://127.0.0.1:$PORT/metrics" 2>/dev/null |
		grep -E '^meridian_sfu_(direct_srtp_packets|udp_sent_datagrams)_total' || true
} | tee "$RESULTS/table.md"
echo "results: $RESULTS"
