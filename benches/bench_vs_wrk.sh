#!/usr/bin/env bash
# Is `tabula bench` the bottleneck? The same requests from wrk and from `tabula bench --url`,
# one after the other against one server (the release binary pinned to core 0, each load
# pinned to core 1, one client thread, the same connections): the bare endpoint
# (GET /api/health), durable creates of the small task of benches/http/post_task.lua, and
# get-by-id as benches/http/get_record.lua. Each pair runs `rounds` times, alternating, so that
# the host's drift hits both alike; the table prints each run's requests/s and the ratio.
#
#   benches/bench_vs_wrk.sh [seconds] [connections] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
connections=${2:-64}
rounds=${3:-2}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release --quiet
binary="${CARGO_TARGET_DIR:-$(pwd)/target}/release/tabula"
work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
python3 - "$work/bench.toml" <<'PY'
import re, sys
text = open("config.toml").read()
text = re.sub(r'^(sign_in|sign_up|password|api_keys|tables_get|tables_post|activity_get|admin_per_second) = \d+$',
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
export TOKEN RECORDS=10000
# At least 10 000 tasks before the reads.
taskset -c 1 wrk -t1 -c"$connections" -d5s -s benches/http/post_task.lua "$base/api/tables/tasks/records" >/dev/null

wrk_rate() { # path, script?
  local script=()
  [ -n "${2:-}" ] && script=(-s "$2")
  taskset -c 1 wrk -t1 -c"$connections" -d"${duration}s" "${script[@]}" -H "Authorization: Bearer $TOKEN" "$base$1" \
    | awk '/Requests\/sec/ {print $2}'
}
bench_rate() { # scenario file
  taskset -c 1 "$binary" bench mixed --file "$1" --url "$base" --token "$TOKEN" --client-cores 1 \
    -c "$connections" -j 1 -d "${duration}s" --quiet --report "$work/report.json" >/dev/null
  python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["scenarios"][0]["throughput"]))' "$work/report.json"
}
printf '%-8s %-6s %12s %14s %7s\n' request round 'wrk req/s' 'bench req/s' ratio
for round in $(seq "$rounds"); do
  for request in health create read; do
    case $request in
      health) w=$(wrk_rate /api/health); b=$(bench_rate benches/scenarios/health.toml) ;;
      create) w=$(wrk_rate /api/tables/tasks/records benches/http/post_task.lua)
              b=$(bench_rate benches/scenarios/tasks_create.toml) ;;
      read)   w=$(wrk_rate "" benches/http/get_record.lua); b=$(bench_rate benches/scenarios/tasks_read.toml) ;;
    esac
    printf '%-8s %-6s %12.0f %14.0f %6.1f%%\n' "$request" "$round" "$w" "$b" "$(python3 -c "print(100*$b/$w)")"
  done
done
