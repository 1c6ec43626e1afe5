#!/usr/bin/env bash
# HTTP load scenario: the release binary pinned to core 0, wrk pinned to core 1.
# Usage: benches/http_load.sh [seconds] [connections]
# Prints durable creates/s and get-by-id/s with latency percentiles, RSS and bytes on disk.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
connections=${2:-64}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release --quiet
work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
(cd "$work" && TABULA_LOG=warn taskset -c 0 "$OLDPWD/target/release/tabula" serve --port "$port" --data-dir "$work/data") &
server=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/api/health" >/dev/null && break; sleep 0.1; done
base="http://127.0.0.1:$port"
echo "== durable creates, $connections connections, ${duration}s (server on core 0, wrk on core 1)"
taskset -c 1 wrk -t1 -c"$connections" -d"${duration}s" --latency -s benches/http/post_task.lua "$base/api/tables/tasks/records" | grep -E 'Requests/sec|50%|99%|Non-2xx'
records=$(curl -s "$base/api/tables" | python3 -c 'import json,sys; print([t for t in json.load(sys.stdin)["tables"] if t["name"]=="tasks"][0]["recordCount"])')
echo "records stored: $records"
echo "== get by id, $connections connections, ${duration}s"
RECORDS=$records taskset -c 1 wrk -t1 -c"$connections" -d"${duration}s" --latency -s benches/http/get_record.lua "$base" | grep -E 'Requests/sec|50%|99%|Non-2xx'
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$server/status")
disk=$(du -sb "$work/data" | cut -f1)
echo "RSS: $((rss_kb / 1024)) MiB; on disk: $disk bytes = $((disk / (records > 0 ? records : 1))) bytes/record"
