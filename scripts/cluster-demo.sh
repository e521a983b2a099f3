#!/usr/bin/env bash
# A jobcast cluster on this machine: an embedded NATS server
# (cmd/jobcast-nats-dev), ClickHouse when one answers on the configured
# address, three `jobcast serve` nodes on loopback ports, and demo traffic
# (`jobcast loadgen`) whose producers post through one node while the phones
# watch through the next. Prints where the dashboards are; stops everything
# on Ctrl-C or after -duration. `make cluster-demo` runs it.
#
#   scripts/cluster-demo.sh [-duration 2m]
#
# Environment (all optional):
#   JOBCAST_DEMO_NODES           nodes (default 3)
#   JOBCAST_DEMO_PORT            first node's port, the next ones follow (default 8081; 0: any free ports)
#   JOBCAST_DEMO_CLICKHOUSE_URL  telemetry store (default clickhouse://127.0.0.1:9000/jobcast_demo); used
#                                when its host and port accept a connection, else the nodes run without it
#   JOBCAST_DEMO_CONNS           phones per node (default 60)
#   JOBCAST_DEMO_ROUND           each traffic round's load phase (default 20s); a round then ends its jobs
#   JOBCAST_BIN, JOBCAST_NATS_DEV_BIN  prebuilt binaries (default: built into the run's temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."

duration=""
while [ $# -gt 0 ]; do
  case "$1" in
    -duration|--duration) duration=${2:?-duration needs a value}; shift 2 ;;
    -duration=*|--duration=*) duration=${1#*=}; shift ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "cluster-demo: unknown argument $1 (try -h)" >&2; exit 2 ;;
  esac
done
# seconds parses 90, 90s, 2m or 1h.
seconds() {
  case "$1" in
    *h) echo $(( ${1%h} * 3600 )) ;;
    *m) echo $(( ${1%m} * 60 )) ;;
    *s) echo $(( ${1%s} )) ;;
    *) echo $(( $1 )) ;;
  esac
}
limit=0
if [ -n "$duration" ]; then
  limit=$(seconds "$duration") || { echo "cluster-demo: -duration $duration: use e.g. 90s or 2m" >&2; exit 2; }
fi

nodes=${JOBCAST_DEMO_NODES:-3}
port0=${JOBCAST_DEMO_PORT:-8081}
conns=${JOBCAST_DEMO_CONNS:-60}
round_for=${JOBCAST_DEMO_ROUND:-20s}
ch_url=${JOBCAST_DEMO_CLICKHOUSE_URL:-clickhouse://127.0.0.1:9000/jobcast_demo}

dir=$(mktemp -d /tmp/jobcast-cluster-demo.XXXXXX)
pids=()      # nodes and NATS, stopped last
traffic=()   # traffic loops
cleanup() {
  trap - INT TERM EXIT
  echo "cluster-demo: stopping"
  touch "$dir/stop"
  for p in "${traffic[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for f in "$dir"/loadgen-*.pid; do
    [ -e "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null || true
  done
  for p in "${traffic[@]}"; do wait "$p" 2>/dev/null || true; done
  # Nodes first (each drains its clients and flushes telemetry), NATS last.
  for (( i=${#pids[@]}-1; i>=0; i-- )); do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
  for (( i=${#pids[@]}-1; i>=0; i-- )); do wait "${pids[$i]}" 2>/dev/null || true; done
  rm -rf "$dir"
  echo "cluster-demo: stopped"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

jobcast=${JOBCAST_BIN:-}
natsdev=${JOBCAST_NATS_DEV_BIN:-}
if [ -z "$jobcast" ] || [ -z "$natsdev" ]; then
  echo "cluster-demo: building jobcast and jobcast-nats-dev"
  [ -n "$jobcast" ] || { go build -o "$dir/jobcast" ./cmd/jobcast; jobcast="$dir/jobcast"; }
  [ -n "$natsdev" ] || { go build -o "$dir/jobcast-nats-dev" ./cmd/jobcast-nats-dev; natsdev="$dir/jobcast-nats-dev"; }
fi

# wait_line FILE REGEX PID: prints the first match of REGEX in FILE once it
# appears; fails if PID exits first or 60 s pass.
wait_line() {
  local i m
  for i in $(seq 1 600); do
    if m=$(grep -oE "$2" "$1" 2>/dev/null | head -1) && [ -n "$m" ]; then echo "$m"; return 0; fi
    if ! kill -0 "$3" 2>/dev/null; then echo "cluster-demo: process $3 exited; its output:" >&2; cat "$1" >&2; return 1; fi
    sleep 0.1
  done
  echo "cluster-demo: timed out waiting for $2 in $1" >&2
  return 1
}

"$natsdev" -addr 127.0.0.1:0 -store-dir "$dir/nats" >"$dir/nats.log" 2>&1 &
pids+=($!)
nats_url=$(wait_line "$dir/nats.log" 'nats://127\.0\.0\.1:[0-9]+' "$!")
echo "cluster-demo: NATS (embedded, JetStream) on $nats_url"

use_ch=""
ch_hostport=$(echo "$ch_url" | sed -E 's#^[a-z]+://([^@/]*@)?([^/?]+).*#\2#')
if (exec 3<>"/dev/tcp/${ch_hostport%:*}/${ch_hostport##*:}") 2>/dev/null; then
  use_ch=$ch_url
  echo "cluster-demo: ClickHouse on $ch_hostport: every node writes telemetry to $ch_url"
else
  echo "cluster-demo: no ClickHouse on $ch_hostport: the nodes run without -clickhouse, so each keeps"
  echo "              its own DuckDB telemetry and each dashboard shows its own node's numbers"
  echo "              (set JOBCAST_DEMO_CLICKHOUSE_URL, or start one: eval \"\$(.ci/clickhouse start)\")"
fi

# Every node shares the secrets; fresh ones per run.
rand() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
api_key=$(rand); jwt=$(rand); admin=$(rand)
urls=()
for (( i=0; i<nodes; i++ )); do
  port=0
  [ "$port0" -ne 0 ] && port=$((port0 + i))
  id="node-$((i + 1))"
  mkdir -p "$dir/$id"
  args=(serve -addr "127.0.0.1:$port" -nats "$nats_url")
  [ -n "$use_ch" ] && args+=(-clickhouse "$use_ch")
  JOBCAST_NODE_ID=$id JOBCAST_DATA_DIR="$dir/$id" JOBCAST_API_KEYS=$api_key JOBCAST_JWT_SECRET=$jwt \
    JOBCAST_ADMIN_TOKEN=$admin JOBCAST_ALERT_EVAL_INTERVAL=10s \
    "$jobcast" "${args[@]}" >"$dir/$id.out" 2>"$dir/$id.log" &
  pids+=($!)
  urls+=("$(wait_line "$dir/$id.out" 'http://127\.0\.0\.1:[0-9]+' "$!")")
done

echo
echo "cluster-demo: $nodes nodes (admin token $admin, API key $api_key):"
for (( i=0; i<nodes; i++ )); do
  echo "  node-$((i + 1))  ${urls[$i]}/dashboard   log $dir/node-$((i + 1)).log"
done
echo "traffic: $conns phones per node; the producers of each node's jobs post through the previous node"
echo

# One loop per node: phones on node i, producers on node i-1. Each round
# runs loadgen for a while, completes its jobs and checks every phone
# ended with the server's state; the next round starts new jobs.
for (( i=0; i<nodes; i++ )); do
  prod=${urls[$(( (i + nodes - 1) % nodes ))]}
  phones=${urls[$i]}
  (
    trap 'exit 0' TERM
    round=1
    while [ ! -e "$dir/stop" ]; do
      "$jobcast" loadgen -url "$prod" -client-urls "$phones" -api-key "$api_key" -admin-token "$admin" -server-pid -1 \
        -conns "$conns" -watchers-per-job 2 -rate 2 -connect-rate 50 -source-ips 2 -duration "$round_for" -drain-timeout 20s \
        >"$dir/loadgen-$i.report" 2>>"$dir/loadgen-$i.log" &
      echo $! >"$dir/loadgen-$i.pid"
      if wait $! 2>/dev/null; then
        echo "traffic to node-$((i + 1)), round $round: $(grep -m1 -E '^ +latency ' "$dir/loadgen-$i.report" | tr -s ' ' || echo ok)"
      elif [ ! -e "$dir/stop" ]; then
        echo "traffic to node-$((i + 1)), round $round failed: $(tail -3 "$dir/loadgen-$i.log")"
        sleep 1
      fi
      round=$((round + 1))
    done
  ) &
  traffic+=($!)
done

if [ "$limit" -gt 0 ]; then
  echo "cluster-demo: running for $duration (Ctrl-C stops earlier)"
else
  echo "cluster-demo: running until Ctrl-C"
fi
start=$SECONDS
while [ "$limit" -eq 0 ] || [ $((SECONDS - start)) -lt "$limit" ]; do
  for p in "${pids[@]}"; do
    if ! kill -0 "$p" 2>/dev/null; then
      echo "cluster-demo: process $p exited unexpectedly; logs in $dir:" >&2
      tail -5 "$dir"/*.log >&2 || true
      exit 1
    fi
  done
  sleep 1
done
exit 0
