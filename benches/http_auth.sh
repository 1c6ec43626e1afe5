#!/usr/bin/env bash
# The cost of authentication on the hot read path (SPEC §8, issue "accounts and access
# control"): get-by-id on the same records of the same server, anonymously and with a bearer
# session token, then with an API key. The target is authenticated within 10% of anonymous:
# a session is resolved with one sha256 and two in-memory map lookups (no Argon2, no disk).
#
#   benches/http_auth.sh [seconds] [connections] [records]
#
# seconds     length of each measured wrk run (default 10)
# connections wrk connections (default 64)
# records     records created before the reads (default 10000)
#
# The server runs the demo app with `tasks` readable by anyone (so the anonymous run reads the
# same table) and every rate limit off (a benchmark is one client far over any sane limit). The
# release binary is pinned to core 0, wrk to core 1.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
connections=${2:-64}
records=${3:-10000}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release --quiet
binary="${CARGO_TARGET_DIR:-$(pwd)/target}/release/tabula"
work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
python3 - "$work/bench.toml" <<'PY'
import re, sys
text = open("config.toml").read()
# tasks (the first table) readable by anyone; every rate limit off.
text = text.replace('read = "authenticated"', 'read = "all"', 1)
text = re.sub(r'^(sign_in|sign_up|password|tables_get|tables_post|activity_get|admin_per_second) = \d+$',
              r'\1 = 0', text, flags=re.M)
open(sys.argv[1], "w").write(text)
PY
admin_email=bench@example.com
admin_password=bench-password-1
(cd "$work" && TABULA_LOG=warn TABULA_ADMIN_EMAIL=$admin_email TABULA_ADMIN_PASSWORD=$admin_password \
  exec taskset -c 0 "$binary" serve --config "$work/bench.toml" --port "$port" --data-dir "$work/data") &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$work"' EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 200); do curl -sf "$base/api/health" >/dev/null && break; sleep 0.1; done

json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
session=$(curl -s -X POST "$base/api/auth/sign-in/email" -H 'content-type: application/json' \
  -d "{\"email\":\"$admin_email\",\"password\":\"$admin_password\"}" | json_field '["token"]')
api_key=$(curl -s -X POST "$base/api/auth/api-keys" -H "Authorization: Bearer $session" \
  -H 'content-type: application/json' -d '{"name":"bench","scope":"read"}' | json_field '["key"]')
record_count() {
  curl -s "$base/api/tables/tasks" | json_field '["table"]["recordCount"]'
}
while [ "$(record_count)" -lt "$records" ]; do
  TOKEN=$session taskset -c 1 wrk -t1 -c"$connections" -d5s -s benches/http/post_task.lua \
    "$base/api/tables/tasks/records" >/dev/null
done
stored=$(record_count)
echo "records stored: $stored"
measure() { grep -E 'Requests/sec|Latency  |50%|99%|Non-2xx|Socket errors' || true; }
run() {
  local label=$1 token=$2
  echo "== get by id, $label: $connections connections, ${duration}s"
  RECORDS=$stored TOKEN=$token taskset -c 1 wrk -t1 -c"$connections" -d"${duration}s" --latency \
    -s benches/http/get_record.lua "$base" | measure
}
run "anonymous" ""
run "bearer session" "$session"
run "bearer API key" "$api_key"
run "anonymous (again, for drift)" ""
