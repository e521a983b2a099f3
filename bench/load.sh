#!/usr/bin/env bash
# Runs the load-generator scenarios of docs/benchmarks.md ("Load generator")
# against a jobcast server process: the server pinned to CPU 0, the load
# generator to CPU 1 (where the machine has two). Usage:
#
#   bench/load.sh [scenario...]     # idle fanout fanout-half throttled churn chaos (default: all)
#
# Environment: JOBCAST_BIN (a built jobcast; default: go build one),
# OUT (report directory, default $TMPDIR/jobcast-bench-load), RATE (fan-out events/s per
# job at saturation, default 6), PRODUCERS (concurrent producer senders of the
# throttled scenario, default 128: fewer cannot post 40,000 events/s here).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-${TMPDIR:-/tmp}/jobcast-bench-load}
RATE=${RATE:-6}
mkdir -p "$OUT"
BIN=${JOBCAST_BIN:-}
if [[ -z "$BIN" ]]; then
	BIN=$(mktemp -d)/jobcast
	go build -o "$BIN" ./cmd/jobcast
fi
SERVER_CPU=0
CLIENT_CPU=1
if [[ $(nproc) -lt 2 ]]; then CLIENT_CPU=0; fi

API_KEY=bench-load-api-key-0123456789
ADMIN=bench-load-admin-token-0123456789
# A free port: fixed ones collide with other servers on the machine.
PORT=${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
URL=http://127.0.0.1:$PORT

# start_server EXTRA_YAML: a fresh data dir, generous per-IP limits (the load
# comes from 16 loopback addresses), the given settings on top.
start_server() {
	local dir
	dir=$(mktemp -d)
	cat >"$dir/jobcast.yaml" <<YAML
addr: 127.0.0.1:$PORT
dataDir: $dir/data
apiKeys: [$API_KEY]
adminToken: $ADMIN
maxConnsPerIP: 20000
maxConnsPerJob: 1000
newConnsPerSecPerIP: 20000
requestsPerSecPerIP: 1000000
$1
YAML
	JOBCAST_LOG_LEVEL=warn taskset -c $SERVER_CPU "$BIN" serve --config "$dir/jobcast.yaml" >"$dir/stdout" 2>"$dir/stderr" &
	SERVER_PID=$!
	for _ in $(seq 1 300); do
		grep -q "serving on" "$dir/stdout" 2>/dev/null && return 0
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "server did not start:" >&2
	cat "$dir/stderr" >&2
	exit 1
}

stop_server() {
	kill -TERM "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
}
trap stop_server EXIT

# loadgen NAME ARGS...: one run, its JSON report in $OUT/NAME.json.
loadgen() {
	local name=$1
	shift
	echo "== $name: jobcast loadgen $*" >&2
	taskset -c $CLIENT_CPU "$BIN" loadgen -url "$URL" -api-key "$API_KEY" -admin-token "$ADMIN" \
		-server-pid "$SERVER_PID" -json-out "$OUT/$name.json" "$@" || echo "($name: exit $?)" >&2
}

scenario() {
	case $1 in
	idle) # target 1: 19,000 idle connections with heartbeats, past one ping round
		start_server "heartbeatInterval: 30s"
		loadgen idle -conns 19000 -connect-rate 2000 -duration 40s -rate 0
		;;
	fanout) # target 2: 1,000 jobs x 10 watchers, throttling off, at saturation
		start_server "throttleDisabled: true"
		loadgen fanout -conns 10000 -watchers-per-job 10 -connect-rate 2000 -duration 20s -rate "$RATE" -producers 16 -batch-interval 1s
		;;
	fanout-half) # target 2: the same at half that rate, for latency
		start_server "throttleDisabled: true"
		loadgen fanout-half -conns 10000 -watchers-per-job 10 -connect-rate 2000 -duration 20s \
			-rate "$(awk "BEGIN{print $RATE/2}")" -producers 16 -batch-interval 1s
		;;
	throttled) # target 3: 2,000 jobs at 20 updates/s, delivered at 2/s per job
		start_server "throttle: 500ms"
		loadgen throttled -conns 2000 -connect-rate 2000 -duration 20s -rate 20 -batch-interval 1s -producers "${PRODUCERS:-128}"
		;;
	churn) # target 4: new authenticated connections, sustained 30 s
		start_server ""
		loadgen churn -conns 1000 -churn -connect-rate 3000 -duration 30s
		;;
	chaos) # target 5: 5,000 jobs, a fifth of the connections dropped
		start_server "throttle: 500ms"
		loadgen chaos -conns 5000 -connect-rate 2000 -duration 20s -rate 2 -batch-interval 1s -producers 32 \
			-network drop=0.2,drop-within=15s
		;;
	*)
		echo "unknown scenario $1" >&2
		exit 2
		;;
	esac
	stop_server
}

if [[ $# -eq 0 ]]; then set -- idle fanout fanout-half throttled churn chaos; fi
for s in "$@"; do scenario "$s"; done
