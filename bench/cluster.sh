#!/usr/bin/env bash
# Cluster measurements of docs/cluster.md ("Numbers"): `jobcast serve`
# processes on one embedded NATS server (cmd/jobcast-nats-dev), driven by
# `jobcast loadgen`. Usage:
#
#   bench/cluster.sh [scenario...]     # latency latency-local connections ingest (default: all)
#
#   latency        3 nodes; LAT_CONNS (default 5,000) clients on nodes 2 and 3, producers on node 1:
#                  cross-node publish→deliver latency (throttling off, 10
#                  watchers per job, RATE events/s per job)
#   latency-local  the same with producers and clients on node 2, for comparison
#   connections    4 nodes, NODE_CONNS idle connections each (default 15,000,
#                  opened at CONNECT_RATE/s, default 1,000), past one
#                  heartbeat: what was reached, RSS and open files per node.
#                  10 watchers per job, so the run ends with 6,000 jobs to
#                  finish rather than 60,000
#   ingest         3 nodes writing telemetry to ClickHouse: INGEST_CONNS clients
#                  per node (default 300) with a 100 ms heartbeat, every
#                  heartbeat an event (9,000 events/s offered at the default);
#                  events/s written, dropped and lost
#
# Environment: JOBCAST_BIN, JOBCAST_NATS_DEV_BIN (built binaries; default: go
# build them), JOBCAST_BENCH_CLICKHOUSE_URL (clickhouse://127.0.0.1:19000;
# required by ingest, used by the others when set: each run gets a fresh
# database), OUT (reports, default $TMPDIR/jobcast-bench-cluster), RATE
# (latency: events/s per job, default 2).
#
# Each process may hold 20,000 open files here: nodes take at most 15,000
# connections; loadgen runs one worker process per client node.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-${TMPDIR:-/tmp}/jobcast-bench-cluster}
RATE=${RATE:-2}
NODE_CONNS=${NODE_CONNS:-15000}
LAT_CONNS=${LAT_CONNS:-5000}
CONNECT_RATE=${CONNECT_RATE:-1000}
INGEST_CONNS=${INGEST_CONNS:-300}
CH=${JOBCAST_BENCH_CLICKHOUSE_URL:-}
mkdir -p "$OUT"
work=$(mktemp -d /tmp/jobcast-bench-cluster.XXXXXX)
BIN=${JOBCAST_BIN:-}
NATSDEV=${JOBCAST_NATS_DEV_BIN:-}
if [[ -z "$BIN" ]]; then BIN=$work/jobcast; go build -o "$BIN" ./cmd/jobcast; fi
if [[ -z "$NATSDEV" ]]; then NATSDEV=$work/jobcast-nats-dev; go build -o "$NATSDEV" ./cmd/jobcast-nats-dev; fi

API_KEY=bench-cluster-api-key-0123456789
ADMIN=bench-cluster-admin-token-0123456789
JWT=bench-cluster-jwt-secret-0123456789-0123456789
PIDS=()
URLS=()
NATS_PID=""

stop_all() {
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	for d in "$work"/node-*; do
		[[ -e "$d/node.err" ]] && mv "$d/node.err" "$OUT/${SCENARIO:-run}-$(basename "$d").log"
		rm -rf "$d"
	done
	if [[ -n "$NATS_PID" ]]; then kill -TERM "$NATS_PID" 2>/dev/null || true; wait "$NATS_PID" 2>/dev/null || true; fi
	rm -rf "$work/nats"
	PIDS=()
	URLS=()
	NATS_PID=""
}
trap 'stop_all; rm -rf "$work"' EXIT

# wait_for FILE REGEX PID: the first match of REGEX in FILE, once there.
wait_for() {
	local m
	for _ in $(seq 1 600); do
		if m=$(grep -oE "$2" "$1" 2>/dev/null | head -1) && [[ -n "$m" ]]; then echo "$m"; return 0; fi
		kill -0 "$3" 2>/dev/null || break
		sleep 0.1
	done
	echo "process $3 did not start:" >&2
	cat "$1" "${1%.out}.err" >&2 2>/dev/null || true
	exit 1
}

# start_cluster N CLICKHOUSE_URL EXTRA_YAML: NATS and N nodes with
# generous per-IP limits (the load comes from a few loopback addresses).
start_cluster() {
	local n=$1 ch=$2 extra=$3
	"$NATSDEV" -addr 127.0.0.1:0 -store-dir "$work/nats" >"$work/nats.out" 2>&1 &
	NATS_PID=$!
	local nats
	nats=$(wait_for "$work/nats.out" 'nats://127\.0\.0\.1:[0-9]+' "$NATS_PID")
	for ((i = 1; i <= n; i++)); do
		local d=$work/node-$i
		mkdir -p "$d"
		cat >"$d/jobcast.yaml" <<YAML
addr: 127.0.0.1:0
dataDir: $d/data
nodeId: node-$i
natsUrl: $nats
clickhouseUrl: "$ch"
apiKeys: [$API_KEY]
adminToken: $ADMIN
jwtSecret: $JWT
maxConnsPerIP: 20000
maxConnsPerJob: 1000
newConnsPerSecPerIP: 20000
requestsPerSecPerIP: 1000000
$extra
YAML
		JOBCAST_LOG_LEVEL=warn "$BIN" serve --config "$d/jobcast.yaml" >"$d/node.out" 2>"$d/node.err" &
		PIDS+=($!)
		URLS+=("$(wait_for "$d/node.out" 'http://127\.0\.0\.1:[0-9]+' "$!")")
	done
	echo "nats $nats; nodes ${URLS[*]}; clickhouse ${ch:-none}" >&2
}

# fresh_db: the ClickHouse URL with a new database name, or empty.
fresh_db() {
	[[ -z "$CH" ]] && return 0
	echo "${CH%/}/jobcast_bench_${1//-/_}_$(date +%s)"
}

# rss_sampler FILE: every 2 s, each node's VmRSS (kB) and open files, one
# line per sample, until killed.
rss_sampler() {
	while :; do
		local line=""
		for p in "${PIDS[@]}"; do
			local rss fds
			rss=$(awk '/VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
			fds=$(ls "/proc/$p/fd" 2>/dev/null | wc -l)
			line+="$p:${rss}kB:${fds}fd "
		done
		echo "$(date +%s) $line" >>"$1"
		sleep 2
	done
}

# metric URL NAME LABEL: a counter from a node's /metrics.
metric() {
	curl -s -H "Authorization: Bearer $ADMIN" "$1/metrics" | awk -v n="$2" -v l="$3" '$1 == n"{"l"}" || ($1 == n && l == "") {print $2}'
}

# ingest_sampler FILE: every 5 s, the time, the nodes' written telemetry
# events and their dropped plus lost ones, summed, until killed.
ingest_sampler() {
	while :; do
		local w=0 d=0 x
		for u in "${URLS[@]}"; do
			x=$(metric "$u" jobcast_telemetry_events_total 'outcome="written"'); w=$(awk -v a="$w" -v b="${x:-0}" 'BEGIN {printf "%d", a + b}')
			x=$(metric "$u" jobcast_telemetry_events_total 'outcome="dropped"'); d=$(awk -v a="$d" -v b="${x:-0}" 'BEGIN {printf "%d", a + b}')
			x=$(metric "$u" jobcast_telemetry_events_total 'outcome="lost"'); d=$(awk -v a="$d" -v b="${x:-0}" 'BEGIN {printf "%d", a + b}')
		done
		echo "$(date +%s.%N) $w $d" >>"$1"
		sleep 5
	done
}

scenario() {
	SCENARIO=$1
	case $1 in
	latency)
		start_cluster 3 "$(fresh_db latency)" "throttleDisabled: true"
		echo "== latency: jobcast loadgen -url ${URLS[0]} -client-urls ${URLS[1]},${URLS[2]} -conns $LAT_CONNS -watchers-per-job 10 -rate $RATE" >&2
		"$BIN" loadgen -url "${URLS[0]}" -client-urls "${URLS[1]},${URLS[2]}" -api-key "$API_KEY" -admin-token "$ADMIN" \
			-server-pid "${PIDS[0]}" -conns "$LAT_CONNS" -watchers-per-job 10 -connect-rate 1000 -duration 30s -rate "$RATE" \
			-producers 16 -batch-interval 1s -json-out "$OUT/latency.json" | tee "$OUT/latency.txt" || echo "(latency: exit $?)" >&2
		;;
	latency-local)
		start_cluster 3 "$(fresh_db latency-local)" "throttleDisabled: true"
		echo "== latency-local: jobcast loadgen -url ${URLS[1]} -conns $LAT_CONNS -watchers-per-job 10 -rate $RATE" >&2
		"$BIN" loadgen -url "${URLS[1]}" -api-key "$API_KEY" -admin-token "$ADMIN" \
			-server-pid "${PIDS[1]}" -conns "$LAT_CONNS" -watchers-per-job 10 -connect-rate 1000 -duration 30s -rate "$RATE" \
			-producers 16 -batch-interval 1s -json-out "$OUT/latency-local.json" | tee "$OUT/latency-local.txt" || echo "(latency-local: exit $?)" >&2
		;;
	connections)
		start_cluster 4 "$(fresh_db connections)" "heartbeatInterval: 30s"
		local total=$((4 * NODE_CONNS))
		rm -f "$OUT/connections.rss"
		rss_sampler "$OUT/connections.rss" &
		local sampler=$!
		echo "== connections: jobcast loadgen -url ${URLS[0]} -client-urls $(IFS=,; echo "${URLS[*]}") -conns $total (idle)" >&2
		"$BIN" loadgen -url "${URLS[0]}" -client-urls "$(IFS=,; echo "${URLS[*]}")" -api-key "$API_KEY" -admin-token "$ADMIN" \
			-server-pid "${PIDS[0]}" -conns "$total" -watchers-per-job 10 -connect-rate "$CONNECT_RATE" -source-ips 32 -duration 40s -rate 0 -drain-timeout 180s \
			-conns-per-process "$NODE_CONNS" -json-out "$OUT/connections.json" | tee "$OUT/connections.txt" || echo "(connections: exit $?)" >&2
		kill "$sampler" 2>/dev/null || true
		wait "$sampler" 2>/dev/null || true
		echo "peak per node, from $OUT/connections.rss:" | tee -a "$OUT/connections.txt"
		awk '{ for (i = 2; i <= NF; i++) { split($i, f, ":"); r = f[2] + 0; o = f[3] + 0; if (r > rss[i]) rss[i] = r; if (o > fd[i]) fd[i] = o } if (NF > n) n = NF }
			END { for (i = 2; i <= n; i++) printf "  node-%d: %.0f MB RSS, %d open files\n", i - 1, rss[i] / 1024, fd[i] }' "$OUT/connections.rss" | tee -a "$OUT/connections.txt"
		;;
	ingest)
		if [[ -z "$CH" ]]; then echo "ingest needs JOBCAST_BENCH_CLICKHOUSE_URL" >&2; exit 2; fi
		start_cluster 3 "$(fresh_db ingest)" "heartbeatInterval: 100ms
pongTimeout: 10s
heartbeatSampleInterval: 1"
		rm -f "$OUT/ingest.samples"
		ingest_sampler "$OUT/ingest.samples" &
		local sampler=$! pids=()
		for i in 0 1 2; do
			"$BIN" loadgen -url "${URLS[$i]}" -api-key "$API_KEY" -admin-token "$ADMIN" -server-pid "${PIDS[$i]}" \
				-conns "$INGEST_CONNS" -connect-rate 1000 -duration 30s -rate 0 -json-out "$OUT/ingest-$i.json" \
				>"$OUT/ingest-$i.txt" 2>"$OUT/ingest-$i.err" &
			pids+=($!)
		done
		for p in "${pids[@]}"; do wait "$p" || echo "(ingest loadgen $p: exit $?)" >&2; done
		sleep 3 # the recorders flush every second
		kill "$sampler" 2>/dev/null || true
		wait "$sampler" 2>/dev/null || true
		# Rates between samples; the median of those while clients were
		# connected (written > 0) is the sustained rate.
		local rates dropped total
		rates=$(awk 'NR > 1 && $1 > t { r = ($2 - w) / ($1 - t); if (r > 0) printf "%.0f\n", r } { t = $1; w = $2 }' "$OUT/ingest.samples" | sort -n)
		dropped=$(awk 'NR == 1 { d0 = $3 } { d = $3 } END { print d - d0 }' "$OUT/ingest.samples")
		total=$(awk 'NR == 1 { w0 = $2 } { w = $2 } END { print w - w0 }' "$OUT/ingest.samples")
		echo "ingest: 3 nodes, $((3 * INGEST_CONNS * 10)) heartbeat events/s offered; written per 5-s sample (events/s, sorted): $(echo $rates);" \
			"median $(echo "$rates" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'); $total written, $dropped dropped or lost" | tee "$OUT/ingest.txt"
		;;
	*)
		echo "unknown scenario $1" >&2
		exit 2
		;;
	esac
	stop_all
}

if [[ $# -eq 0 ]]; then set -- latency latency-local connections ingest; fi
for s in "$@"; do scenario "$s"; done
