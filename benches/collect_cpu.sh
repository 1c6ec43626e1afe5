#!/usr/bin/env bash
# CPU time the server spends per POST /api/analytics/collect (all its threads, kernel included:
# `perf stat -e task-clock`), for a fixed number of requests after a warm-up — steadier than
# wall-clock req/s when other work shares the machine. Server on core 0, wrk on core 1.
#   benches/collect_cpu.sh                    # collect, REQUESTS=300000 (the cold start included)
#   TARGET=baseline benches/collect_cpu.sh    # the bare baseline (benches/baseline_collect.rs)
#   BIN=/path/to/tabula benches/collect_cpu.sh   # another build of the server
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${REQUESTS:-300000}
WARMUP=${WARMUP:-20000}
TARGET=${TARGET:-collect}
target_dir=${CARGO_TARGET_DIR:-target}
if [ "${BUILD:-1}" = 1 ]; then
  cargo build --release --bin tabula --bench baseline_collect 2>&1 | tail -1
fi
work=$(mktemp -d)
port=3905
cat > "$work/bench.toml" <<TOML
[server]
port = $port
data_dir = "$work/data"
[log]
level = "warn"
TOML
if [ "$TARGET" = baseline ]; then
  baseline_bin=$(ls -t "$target_dir"/release/deps/baseline_collect-* | grep -v '\.d$' | head -1)
  taskset -c 0 "$baseline_bin" "127.0.0.1:$port" >/dev/null 2>&1 & server=$!
else
  taskset -c 0 "${BIN:-$target_dir/release/tabula}" serve --config "$work/bench.toml" >/dev/null 2>&1 & server=$!
fi
# Wait for the server to stop before its data directory goes.
trap 'kill $server 2>/dev/null; for _ in $(seq 1 50); do kill -0 $server 2>/dev/null || break; sleep 0.1; done; kill -9 $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
url=http://127.0.0.1:$port/api/analytics/collect
send() { # count: wrk until `count` responses have arrived
  rm -f "$work/done"
  STOP_AFTER=$1 DONE_FILE="$work/done" taskset -c 1 wrk -t1 -c64 -d600s \
    -s benches/collect_count.lua "$url" >/dev/null & local client=$!
  while [ ! -e "$work/done" ] && kill -0 $client 2>/dev/null; do sleep 0.05; done
  kill $client 2>/dev/null || true; wait $client 2>/dev/null || true
}
send "$WARMUP"
sleep 1
perf stat -e task-clock -p $server -o "$work/perf.txt" & perf=$!
sleep 0.2
send "$REQUESTS"
sleep 1.2
kill -INT $perf; wait $perf 2>/dev/null || true
awk -v n="$REQUESTS" -v t="$TARGET" -v load="$(cut -d' ' -f1 /proc/loadavg)" \
  '/task-clock/ {gsub(",", "", $1); printf "%s: %.2f us of CPU per request (%d requests, load %s)\n", t, $1 * 1000 / n, n, load}' \
  "$work/perf.txt"
