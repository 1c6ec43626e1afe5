#!/usr/bin/env bash
# Issue 6 benchmark: POST /api/analytics/collect against the bare actix-web baseline
# (benches/baseline_collect.rs: same JSON parse + one HashMap bump), each server pinned to core 0,
# wrk pinned to core 1, 64 connections, then the volume run (benches/analytics_volume.rs).
#   benches/analytics_collect.sh            # DURATION=20s CONNECTIONS=64 VOLUME=1 by default
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-20s}
CONNECTIONS=${CONNECTIONS:-64}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
target_dir=${CARGO_TARGET_DIR:-target}
cargo build --release --bin tabula --bench baseline_collect --bench analytics_volume 2>&1 | tail -1
baseline_bin=$(ls -t "$target_dir"/release/deps/baseline_collect-* | grep -v '\.d$' | head -1)
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT

run_wrk() { # name url
  taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s benches/analytics_collect.lua "$2" > "$work/$1.txt"
  local rps p99
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/$1.txt")
  p99=$(awk '$1=="99%" {print $2}' "$work/$1.txt")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$work/$1.txt")
  echo "$1: ${rps} req/s, p99 ${p99}, non-2xx ${non2xx:-0}"
  eval "${1}_rps=$rps"
}

wait_port() { for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }

taskset -c 0 "$baseline_bin" 127.0.0.1:3901 & server=$!
wait_port 3901
run_wrk baseline http://127.0.0.1:3901/api/analytics/collect
kill $server; wait $server 2>/dev/null || true

cat > "$work/bench.toml" <<TOML
[server]
port = 3902
data_dir = "$work/data"
[log]
level = "warn"
[analytics]
enabled = true
TOML
taskset -c 0 "$target_dir"/release/tabula serve --config "$work/bench.toml" & server=$!
wait_port 3902
run_wrk collect http://127.0.0.1:3902/api/analytics/collect
kill -TERM $server; wait $server 2>/dev/null || true
awk -v c="$collect_rps" -v b="$baseline_rps" 'BEGIN { printf "collect / baseline = %.3f (target >= 0.8)\n", c / b }'

if [ "${VOLUME:-1}" = 1 ]; then
  cargo bench --bench analytics_volume 2>&1 | grep -v -E '^(\s+(Compiling|Finished|Running))'
fi
