#!/usr/bin/env bash
# Instructions per request of POST /api/analytics/collect (and of the bare baseline), under
# callgrind: repeatable where wall-clock req/s is not (a shared machine). The server starts with
# instrumentation off, takes a warm-up of WARMUP requests, then exactly REQUESTS requests are
# counted (wrk stops after that many responses), plus a pause for the aggregator to fold them.
#   benches/collect_callgrind.sh              # REQUESTS=20000 WARMUP=20000 CONNECTIONS=64
#   TARGET=baseline benches/collect_callgrind.sh
#   BIN=/path/to/tabula benches/collect_callgrind.sh   # another build of the server
# Prints instructions per request: all threads, and per thread (the HTTP worker, the aggregator).
# Valgrind's virtual CPU has no SHA extensions, so sha256 runs its portable code here.
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${REQUESTS:-20000}
WARMUP=${WARMUP:-20000}
CONNECTIONS=${CONNECTIONS:-64}
TARGET=${TARGET:-collect}
target_dir=${CARGO_TARGET_DIR:-target}
if [ "${BUILD:-1}" = 1 ]; then
  cargo build --release --bin tabula --bench baseline_collect 2>&1 | tail -1
fi
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
port=3903
cat > "$work/bench.toml" <<TOML
[server]
port = $port
data_dir = "$work/data"
[log]
level = "warn"
[analytics]
enabled = true
TOML
if [ "$TARGET" = baseline ]; then
  command=("$(ls -t "$target_dir"/release/deps/baseline_collect-* | grep -v '\.d$' | head -1)" "127.0.0.1:$port")
else
  command=("${BIN:-$target_dir/release/tabula}" serve --config "$work/bench.toml")
fi
taskset -c 0 valgrind --tool=callgrind --instr-atstart=no --separate-threads=yes \
  --callgrind-out-file="$work/callgrind.out" "${command[@]}" 2>"$work/valgrind.log" & server=$!
for _ in $(seq 1 600); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; kill -0 $server 2>/dev/null || { cat "$work/valgrind.log"; exit 1; }; sleep 0.1; done
url=http://127.0.0.1:$port/api/analytics/collect
send() { # count: wrk until `count` responses have arrived
  rm -f "$work/done"
  STOP_AFTER=$1 DONE_FILE="$work/done" taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d600s \
    -s benches/collect_count.lua "$url" >/dev/null & local client=$!
  while [ ! -e "$work/done" ] && kill -0 $client 2>/dev/null; do sleep 0.2; done
  kill $client 2>/dev/null || true; wait $client 2>/dev/null || true
}
send "$WARMUP"
sleep 1
callgrind_control -i on $server >/dev/null 2>&1
start=$(date +%s.%N)
send "$REQUESTS"
sleep 1.5
callgrind_control -d $server >/dev/null 2>&1
callgrind_control -i off $server >/dev/null 2>&1
sent=$REQUESTS
echo "$TARGET: $sent requests counted (+ at most $CONNECTIONS in flight when wrk stopped), $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.0f", e - s}') s"
for file in "$work"/callgrind.out*; do
  ir=$(awk '/^summary:|^totals:/ {print $2; exit}' "$file")
  thread=$(awk -F'[ :]+' '/^thread:/ {print $2; exit}' "$file")
  [ -n "$ir" ] && [ "$ir" != 0 ] && echo "$ir $thread $(basename "$file")"
done | sort -rn | awk -v n="$sent" '
  { total += $1; printf "  thread %-3s %12d Ir  %8.0f Ir/request  %s\n", $2, $1, $1 / n, $3 }
  END { printf "  all threads %12d Ir  %8.0f Ir/request\n", total, total / n }'
if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$work"/callgrind.out* "$KEEP"/ && echo "profiles kept in $KEEP"; fi
