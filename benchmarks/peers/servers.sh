# Peers of the fan-out benchmark: LiveKit and Janus, installed, configured
# for loopback only and started the same way as Meridian. Sourced by
# benchmarks/run.sh, which provides ROOT, WORK, LOADGEN, PIN_SERVER,
# wait_log and the SERVER_PID / PORT / SERVER_URL conventions.
#
# Every setup_* function either succeeds or sets MISSING[<server>] to the
# reason, which run.sh turns into "missing" rows of the table: a peer that
# cannot be installed is reported, never silently left out.

declare -A MISSING=()
declare -A VERSIONS=()

# LiveKit: the release issue 11 pins (newer ones replace pion with forks the
# module proxy refuses), built from the Go module proxy once and cached.
LIVEKIT_VERSION=${LIVEKIT_VERSION:-v1.13.5}
LIVEKIT_BIN=${LIVEKIT_BIN:-$HOME/.cache/meridian-bench/livekit-$LIVEKIT_VERSION/server}
# --dev keys.
LIVEKIT_KEY=devkey LIVEKIT_SECRET=secret

# setup_livekit_server installs livekit-server if needed.
setup_livekit_server() {
	if [[ ! -x "$LIVEKIT_BIN" ]]; then
		echo "== installing livekit-server $LIVEKIT_VERSION into $(dirname "$LIVEKIT_BIN") (about 2 minutes, once)"
		mkdir -p "$(dirname "$LIVEKIT_BIN")"
		if ! GOFLAGS= GOBIN="$(dirname "$LIVEKIT_BIN")" go install "github.com/livekit/livekit-server/cmd/server@$LIVEKIT_VERSION" >"$WORK/livekit-install.log" 2>&1; then
			MISSING[livekit]="go install github.com/livekit/livekit-server/cmd/server@$LIVEKIT_VERSION failed: $(grep -v '^go: downloading' "$WORK/livekit-install.log" | tail -n 3 | tr '\n' ' ')"
			return 1
		fi
	fi
	VERSIONS[livekit]=$("$LIVEKIT_BIN" --version 2>&1 | head -n 1)
}

# livekit_modfile writes Meridian's go.mod + go.sum with LiveKit's protocol
# module added, at the version livekit-server $LIVEKIT_VERSION itself
# requires, to $WORK/livekit.mod (and .sum): the load generator's LiveKit
# client (benchmarks/peers/livekit.go.in) is built with it, so none of
# those modules enter Meridian's go.mod.
livekit_modfile() {
	local gomod proto
	gomod=$(cd "$WORK" && GOFLAGS= go mod download -json "github.com/livekit/livekit-server@$LIVEKIT_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p') || return 1
	proto=$(awk '$1 == "github.com/livekit/protocol" { print $2; exit }' "$gomod")
	[[ -n "$proto" ]] || { echo "no github.com/livekit/protocol in $gomod" >&2; return 1; }
	cp "$ROOT/go.mod" "$WORK/livekit.mod"
	cp "$ROOT/go.sum" "$WORK/livekit.sum"
	(cd "$ROOT" && GOFLAGS=-mod=mod go get -modfile="$WORK/livekit.mod" \
		"github.com/livekit/protocol/livekit@$proto" "github.com/livekit/protocol/auth@$proto" google.golang.org/protobuf/proto) >"$WORK/livekit-get.log" 2>&1 || {
		cat "$WORK/livekit-get.log" >&2
		return 1
	}
	VERSIONS[livekit-protocol]=$proto
}

# build_loadgen_with_livekit builds the load generator with the LiveKit
# client; on failure run.sh builds it without and reports LiveKit missing.
build_loadgen_with_livekit() {
	local out=$1
	if ! livekit_modfile 2>"$WORK/livekit-mod.err"; then
		MISSING[livekit]="LiveKit client modules: $(tail -n 3 "$WORK/livekit-mod.err" | tr '\n' ' ')"
		return 1
	fi
	cat >"$WORK/livekit-overlay.json" <<EOF
{"Replace": {"$ROOT/benchmarks/loadgen/zz_livekit.go": "$ROOT/benchmarks/peers/livekit.go.in"}}
EOF
	if ! (cd "$ROOT" && go build -modfile="$WORK/livekit.mod" -overlay "$WORK/livekit-overlay.json" -o "$out" ./benchmarks/loadgen) 2>"$WORK/livekit-build.err"; then
		MISSING[livekit]="load generator with the LiveKit client did not build: $(tail -n 3 "$WORK/livekit-build.err" | tr '\n' ' ')"
		return 1
	fi
}

# start_livekit NAME: --dev (keys devkey/secret, no Redis), HTTP and one UDP
# port on 127.0.0.1, ICE over UDP on lo only, no ICE/TCP, logging at info.
# Variants:
#   livekit-twcc     congestion_control.use_send_side_bwe: LiveKit then
#                    negotiates transport-cc on subscriber PeerConnections
#                    (by default it does not, so neither a browser nor the
#                    load generator sends transport-cc feedback to it) and
#                    runs its send-side estimator, as Meridian always does;
#   livekit-batchio  LiveKit's opt-in batched UDP writes (rtc.batch_io).
start_livekit() {
	local name=$1 udp extra=""
	PORT=$("$LOADGEN" freeport)
	udp=$("$LOADGEN" freeport udp)
	case $name in
	livekit-twcc) extra=$'  congestion_control:\n    use_send_side_bwe: true' ;;
	livekit-batchio) extra=$'  batch_io:\n    batch_size: 128\n    max_flush_interval: 2ms' ;;
	esac
	cat >"$WORK/livekit-$PORT.yaml" <<EOF
port: $PORT
bind_addresses: [127.0.0.1]
rtc:
  udp_port: $udp
  tcp_port: 0
  node_ip: 127.0.0.1
  use_external_ip: false
  enable_loopback_candidate: true
  interfaces:
    includes: [lo]
$extra
logging:
  level: info
EOF
	${PIN_SERVER[@]+"${PIN_SERVER[@]}"} "$LIVEKIT_BIN" --dev --config "$WORK/livekit-$PORT.yaml" >"$WORK/server-$PORT.log" 2>&1 &
	SERVER_PID=$!
	SERVER_URL="http://127.0.0.1:$PORT"
	wait_log "$WORK/server-$PORT.log" "starting LiveKit server" "$SERVER_PID"
}

# Janus: the Debian package (apt-get install -y janus), VideoRoom plugin and
# WebSocket transport only, everything on 127.0.0.1.
JANUS_BIN=${JANUS_BIN:-$(command -v janus || true)}
JANUS_LIBDIR=${JANUS_LIBDIR:-/usr/lib/x86_64-linux-gnu/janus}

# setup_janus checks the install and builds the LD_PRELOAD shim that lets
# Janus offer loopback candidates (benchmarks/peers/janus-lo.c).
setup_janus() {
	if [[ -z "$JANUS_BIN" ]]; then
		MISSING[janus]="janus is not installed (apt-get install -y janus)"
		return 1
	fi
	if [[ ! -f "$JANUS_LIBDIR/plugins/libjanus_videoroom.so" || ! -f "$JANUS_LIBDIR/transports/libjanus_websockets.so" ]]; then
		MISSING[janus]="no VideoRoom plugin or WebSocket transport in $JANUS_LIBDIR (set JANUS_LIBDIR)"
		return 1
	fi
	if ! cc -shared -fPIC -O2 -o "$WORK/janus-lo.so" "$ROOT/benchmarks/peers/janus-lo.c" -ldl 2>"$WORK/janus-lo.err"; then
		MISSING[janus]="cannot build the loopback shim benchmarks/peers/janus-lo.c: $(tail -n 2 "$WORK/janus-lo.err" | tr '\n' ' ')"
		return 1
	fi
	VERSIONS[janus]=$("$JANUS_BIN" --version 2>&1 | sed -n 's/^Janus version: .*(\(.*\))/\1/p')
}

# start_janus NAME: janus = Janus's defaults (a thread per handle);
# janus-loops1 = `event_loops = 1` (one shared event loop), which TESTING.md
# found much cheaper per packet on this kind of machine.
start_janus() {
	local name=$1 dir loops=""
	PORT=$("$LOADGEN" freeport)
	dir="$WORK/janus-$PORT"
	mkdir -p "$dir"
	if [[ "$name" == janus-loops1 ]]; then
		loops="event_loops = 1"
	fi
	local off_plugins off_transports off_events
	off_plugins=$(cd "$JANUS_LIBDIR/plugins" && ls libjanus_*.so | grep -v '^libjanus_videoroom.so$' | paste -sd, -)
	off_transports=$(cd "$JANUS_LIBDIR/transports" && ls libjanus_*.so | grep -v '^libjanus_websockets.so$' | paste -sd, -)
	off_events=$(cd "$JANUS_LIBDIR/events" && ls libjanus_*.so 2>/dev/null | paste -sd, -)
	cat >"$dir/janus.jcfg" <<EOF
general: {
	configs_folder = "$dir"
	plugins_folder = "$JANUS_LIBDIR/plugins"
	transports_folder = "$JANUS_LIBDIR/transports"
	events_folder = "$JANUS_LIBDIR/events"
	loggers_folder = "$JANUS_LIBDIR/loggers"
	debug_level = 4
	interface = "127.0.0.1"
	$loops
}
nat: {
	nice_debug = false
	ice_enforce_list = "lo"
	ignore_mdns = true
}
plugins: {
	disable = "$off_plugins"
}
transports: {
	disable = "$off_transports"
}
loggers: {
	disable = "libjanus_jsonlog.so"
}
events: {
	broadcast = false
	disable = "$off_events"
}
EOF
	cat >"$dir/janus.transport.websockets.jcfg" <<EOF
general: {
	json = "plain"
	ws = true
	ws_port = $PORT
	ws_ip = "127.0.0.1"
	wss = false
}
admin: {
	admin_ws = false
	admin_wss = false
}
EOF
	printf 'general: {\n}\n' >"$dir/janus.plugin.videoroom.jcfg"
	LD_PRELOAD="$WORK/janus-lo.so" ${PIN_SERVER[@]+"${PIN_SERVER[@]}"} "$JANUS_BIN" -C "$dir/janus.jcfg" -F "$dir" >"$WORK/server-$PORT.log" 2>&1 &
	SERVER_PID=$!
	SERVER_URL="ws://127.0.0.1:$PORT"
	wait_log "$WORK/server-$PORT.log" "Websockets server started" "$SERVER_PID"
}
