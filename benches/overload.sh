#!/usr/bin/env bash
# Overload: what the server does when more is asked of it than it can do. The release binary
# pinned to core 0, wrk pinned to core 1 (one thread), the server's RSS sampled every second.
#
#   benches/overload.sh [seconds]          # default 15 s per run; prints one line per run
#
# 1. Analytics collect: first at 64 connections (the collector's own ceiling on one core), then
#    at 2048 connections — far more requests asked for than it can answer — with the default
#    queue (analytics.queue_capacity = 100000) and with a small one (1000), which the aggregator
#    cannot keep up with during its flushes: that run must shed with 503 + Retry-After.
# 2. Table writes: durable creates on the demo app's `tasks` at 64 connections (normal load),
#    then at 1024 connections with the default limits.table_write_queue (1024: every connection
#    admitted, so every create waits behind all the others) and with limits.table_write_queue =
#    64 (past 64 writes in progress a create is answered 503 at once; the admitted ones wait
#    behind at most 63 others) — once with wrk sending the next create at once after a 503, once
#    with clients that wait the Retry-After second (benches/http/post_task_retry_after.lua).
#
# Each line: requests/s of successful answers, the share of 503s, p50/p99 latency (of every
# answer, 503s included), and the server's RSS at the start and its highest sample.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-15}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl; }
ulimit -n "$(ulimit -Hn)"  # 2048 connections need more than the usual 1024 descriptors
cargo build --release --quiet --bin tabula
binary="${CARGO_TARGET_DIR:-$(pwd)/target}/release/tabula"
work=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill $server 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

# The demo app, every rate limit off, with the given overrides ("section.key=value" …).
write_config() {
  python3 - "$work/bench.toml" "$@" <<'PY'
import re, sys
text = open("config.toml").read()
text = re.sub(r'^(sign_in|sign_up|password|tables_get|tables_post|activity_get|admin_per_second) = \d+$',
              r'\1 = 0', text, flags=re.M)
for override in sys.argv[2:]:
    key, value = override.split("=", 1)
    section, name = key.split(".")
    pattern = r'(^\[' + section + r'\]\n(?:(?!^\[).*\n)*?)^' + name + r' = .*$'
    text, count = re.subn(pattern, r'\g<1>' + name + ' = ' + value, text, count=1, flags=re.M)
    assert count == 1, override
open(sys.argv[1], "w").write(text)
PY
}

start_server() { # overrides…
  write_config "$@"
  rm -rf "$work/data"
  port=$((20000 + RANDOM % 20000))
  (cd "$work" && TABULA_LOG=error TABULA_ADMIN_EMAIL=bench@example.com TABULA_ADMIN_PASSWORD=bench-password-1 \
    exec taskset -c 0 "$binary" serve --config "$work/bench.toml" --port "$port" --data-dir "$work/data") &
  server=$!
  base="http://127.0.0.1:$port"
  for _ in $(seq 200); do curl -sf "$base/api/health" >/dev/null && break; sleep 0.1; done
  TOKEN=$(curl -s -X POST "$base/api/auth/sign-in/email" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"bench-password-1"}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  export TOKEN
}

stop_server() { kill -TERM $server; wait $server 2>/dev/null || true; server=; }

rss_mib() { awk '/VmRSS/ {printf "%d", $2 / 1024}' "/proc/$server/status"; }

run() { # label connections script url
  local label=$1 connections=$2 script=$3 url=$4
  local rss_start; rss_start=$(rss_mib)
  ( while kill -0 $server 2>/dev/null; do rss_mib; echo; sleep 1; done ) > "$work/rss.txt" 2>/dev/null &
  local sampler=$!
  taskset -c 1 wrk -t1 -c"$connections" -d"${duration}s" --timeout 30s --latency -s "$script" "$url" > "$work/wrk.txt"
  kill $sampler 2>/dev/null || true; wait $sampler 2>/dev/null || true
  python3 - "$label" "$connections" "$rss_start" "$work/wrk.txt" "$work/rss.txt" "$duration" <<'PY'
import re, sys
label, connections, rss_start, wrk_file, rss_file, duration = sys.argv[1:]
text = open(wrk_file).read()
total = int(re.search(r'(\d+) requests in', text).group(1))
non_2xx = re.search(r'Non-2xx or 3xx responses: (\d+)', text)
refused = int(non_2xx.group(1)) if non_2xx else 0
def percentile(name):
    match = re.search(r'^\s*' + name + r'\s+(\S+)', text, re.M)
    return match.group(1) if match else "?"
errors = re.search(r'Socket errors: (.*)', text)
samples = [int(line) for line in open(rss_file).read().split() if line.strip().isdigit()]
print(f"{label}, {connections} connections: {(total - refused) / float(duration):,.0f} ok/s, "
      f"503 {100.0 * refused / max(total, 1):.1f} % of {total:,}, p50 {percentile('50%')}, "
      f"p99 {percentile('99%')}, RSS {rss_start} → max {max(samples or [0])} MiB"
      + (f", socket errors: {errors.group(1)}" if errors else ""))
PY
}

collect() { run "$1" "$2" benches/analytics_collect.lua "$base/api/analytics/collect"; }
creates() { run "$1" "$2" benches/http/post_task.lua "$base/api/tables/tasks/records"; }
patient_creates() { run "$1" "$2" benches/http/post_task_retry_after.lua "$base/api/tables/tasks/records"; }

echo "== analytics collect (${duration}s a run)"
start_server
collect "collect, queue 100000" 64
collect "collect, queue 100000" 2048
stop_server
start_server analytics.queue_capacity=1000
collect "collect, queue 1000" 2048
stop_server

echo "== durable creates on tasks (${duration}s a run)"
start_server
creates "creates, write queue 1024" 64
creates "creates, write queue 1024" 1024
stop_server
start_server limits.table_write_queue=64
creates "creates, write queue 64, 503 retried at once" 1024
stop_server
start_server limits.table_write_queue=64
patient_creates "creates, write queue 64, Retry-After honoured" 1024
stop_server
