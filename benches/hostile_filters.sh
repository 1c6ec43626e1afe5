#!/usr/bin/env bash
# /api/health while hostile LIKE filters run: records of 100 000 characters (four), then
# `parallel` members' list requests at once whose filter ORs 250 patterns with `_` wildcards
# (`body ~ '%a_a_…c%'`, which match a little at every position of the `abab…` text and then
# fail). Health is probed every 20 ms meanwhile; the script prints the slowest and the median
# health answer, and each hostile request's status and time.
#
#   benches/hostile_filters.sh [binary] [parallel] [rounds] [records]
#
# binary    the tabula binary to serve (default: target/release/tabula, built first)
# parallel  hostile requests at once (default 2)
# rounds    hostile requests each of them sends in a row (default 3)
# records   records of 100 000 characters (default 4)
#
# The server uses both cores (no pinning): the question is whether a request that keeps the
# processors busy also keeps the HTTP workers from answering.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-}
parallel=${2:-2}
rounds=${3:-3}
records=${4:-4}
if [ -z "$binary" ]; then
  cargo build --release --quiet
  binary="${CARGO_TARGET_DIR:-$(pwd)/target}/release/tabula"
fi
work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
cat > "$work/bench.toml" <<'TOML'
[rate_limit]
sign_up = 0
sign_in = 0
tables_get = 0
tables_post = 0

[[tables]]
id = 1
name = "pages"

  [[tables.fields]]
  id = 1
  name = "body"
  type = "long-text"

  [tables.permissions]
  read = "authenticated"
  create = "authenticated"
TOML
(cd "$work" && TABULA_LOG=warn exec "$binary" serve --config "$work/bench.toml" --port "$port" \
  --data-dir "$work/data") &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$work"' EXIT
python3 - "http://127.0.0.1:$port" "$parallel" "$rounds" "$records" <<'PY'
import json, statistics, sys, threading, time, urllib.error, urllib.parse, urllib.request

base, parallel, rounds, records = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

def call(method, path, body=None, token=None, timeout=120):
    request = urllib.request.Request(base + path, method=method,
                                     data=None if body is None else json.dumps(body).encode())
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()

for _ in range(600):
    try:
        if call("GET", "/api/health", timeout=1)[0] == 200:
            break
    except OSError:
        time.sleep(0.05)
status, body = call("POST", "/api/auth/sign-up/email",
                    {"email": "bench@example.com", "password": "bench-password-1", "name": "B"})
token = json.loads(body)["token"]
for row in range(records):
    text = str(row) + "ab" * 50_000
    assert call("POST", "/api/tables/pages/records", {"body": text[:100_000]}, token)[0] == 201
hostile = " || ".join(["body ~ '%a_a_a_a_a_a_a_a_c%'"] * 250)
path = "/api/tables/pages/records?" + urllib.parse.urlencode({"filter": hostile})
answers, running = [], [parallel]
lock = threading.Lock()

def hostile_client():
    for _ in range(rounds):
        started = time.monotonic()
        status, _ = call("GET", path, token=token)
        with lock:
            answers.append((status, time.monotonic() - started))
    with lock:
        running[0] -= 1

threads = [threading.Thread(target=hostile_client) for _ in range(parallel)]
for thread in threads:
    thread.start()
health = []
while True:
    with lock:
        if running[0] == 0:
            break
    started = time.monotonic()
    try:
        call("GET", "/api/health", timeout=60)
    except OSError:
        pass
    health.append(time.monotonic() - started)
    time.sleep(0.02)
for thread in threads:
    thread.join()
print(f"health: {len(health)} probes, slowest {max(health) * 1000:.0f} ms, "
      f"median {statistics.median(health) * 1000:.1f} ms")
for status, took in answers:
    print(f"hostile: {status} in {took:.2f} s")
PY
