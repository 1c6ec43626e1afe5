#!/usr/bin/env bash
# HTTP load scenario for the core engine: the release binary pinned to core 0, wrk pinned to
# core 1, durable creates, get-by-id, then two list queries on the demo app's `tasks` table.
#
#   benches/http_load.sh [seconds] [connections] [fill]
#
# seconds     length of each measured wrk run (default 10)
# connections wrk connections (default 64)
# fill        keep creating until the table holds this many records before the reads and the
#             RSS/disk figures (default 0: no extra fill), e.g. 1000000
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
connections=${2:-64}
fill=${3:-0}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release --quiet
binary="${CARGO_TARGET_DIR:-$(pwd)/target}/release/tabula"
work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
# The demo app with auth on as shipped, every rate limit off (one client far over any limit);
# the requests are an admin's, with a bearer session token (TOKEN, read by the wrk scripts).
python3 - "$work/bench.toml" <<'PY'
import re, sys
text = open("config.toml").read()
text = re.sub(r'^(sign_in|sign_up|password|tables_get|tables_post|activity_get|admin_per_second) = \d+$',
              r'\1 = 0', text, flags=re.M)
open(sys.argv[1], "w").write(text)
PY
(cd "$work" && TABULA_LOG=warn TABULA_ADMIN_EMAIL=bench@example.com TABULA_ADMIN_PASSWORD=bench-password-1 \
  exec taskset -c 0 "$binary" serve --config "$work/bench.toml" --port "$port" --data-dir "$work/data") &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$work"' EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 200); do curl -sf "$base/api/health" >/dev/null && break; sleep 0.1; done
TOKEN=$(curl -s -X POST "$base/api/auth/sign-in/email" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"bench-password-1"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
export TOKEN

record_count() {
  curl -s -H "Authorization: Bearer $TOKEN" "$base/api/tables/tasks" | python3 -c 'import json,sys; print(json.load(sys.stdin)["table"]["recordCount"])'
}
measure() { grep -E 'Requests/sec|Latency  |50%|99%|Non-2xx|Socket errors'; }

echo "== durable creates: POST /api/tables/tasks/records, $connections connections, ${duration}s"
taskset -c 1 wrk -t1 -c"$connections" -d"${duration}s" --latency -s benches/http/post_task.lua "$base/api/tables/tasks/records" | measure
while [ "$(record_count)" -lt "$fill" ]; do
  taskset -c 1 wrk -t1 -c"$connections" -d10s -s benches/http/post_task.lua "$base/api/tables/tasks/records" >/dev/null
done
records=$(record_count)
echo "records stored: $records"
echo "== get by id: GET /api/tables/tasks/records/{id}, $connections connections, ${duration}s"
RECORDS=$records taskset -c 1 wrk -t1 -c"$connections" -d"${duration}s" --latency -s benches/http/get_record.lua "$base" | measure
list() { # title, path+query
  echo "== list: $1, $connections connections, ${duration}s"
  taskset -c 1 wrk -t1 -c"$connections" -d"${duration}s" --latency -H "Authorization: Bearer $TOKEN" "$base$2" | measure
}
list "indexed equality, first page of 20 with total" "/api/tables/tasks/records?filter=status%3D'doing'&limit=20"
list "keyset page of 20 from the middle" "/api/tables/tasks/records?after=$((records / 2))&limit=20&skipTotal=true"
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$server/status")
disk=$(du -sb "$work/data" | cut -f1)
echo "RSS: $((rss_kb / 1024)) MiB with $records records; on disk: $disk bytes, $((disk / records)) bytes/record"
