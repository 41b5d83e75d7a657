#!/usr/bin/env bash
# Cost of full instrumentation on GET /auth/me throughput.
#   on:  Prometheus metrics (HTTP RED + domain), tracing with OTLP/HTTP export to a local sink,
#        JSON access logs at info (to /dev/null).
#   off: METRICS_ADDR=off, OTEL_SDK_DISABLED=true, RUST_LOG=error.
# Each run: a fresh release server, one user, a 2 s warm-up, then wrk (2 threads, 32
# connections, DURATION seconds). ROUNDS rounds; medians of per-round costs. Modes and stores:
# bench/server.sh. Needs wrk (Debian package `wrk`). wrk, the server and the stores share this
# machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-5}"
PORT=3901 METRICS_PORT=9901 SINK_PORT=4901
source bench/server.sh
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-target}/release/auth-api"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

python3 bench/otlp_sink.py "$SINK_PORT" 2>"$work/sink.log" &

# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run_mode() {
  local mode="$1"
  start_server "$work" "$mode"
  local me=(-H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/auth/me")
  wrk -t2 -c32 -d2s "${me[@]}" >/dev/null # warm-up
  local cpu_before; cpu_before=$(cpu_ticks "$SERVER_PID")
  wrk -t2 -c32 -d"${DURATION}s" "${me[@]}" >"$work/run.wrk"
  local cpu_after; cpu_after=$(cpu_ticks "$SERVER_PID")
  stop_server
  if grep -q "Non-2xx" "$work/run.wrk"; then
    echo "$mode: some responses were not 200, the figures would be meaningless:" >&2
    cat "$work/run.wrk" >&2
    exit 1
  fi
  local requests; requests=$(awk '/requests in/ {print $1}' "$work/run.wrk")
  # Server CPU time per request (user + system): what the instrumentation itself spends.
  echo "$mode $(awk '/Requests\/sec/ {print $2}' "$work/run.wrk") \
    $(( (cpu_after - cpu_before) * 1000000 / $(getconf CLK_TCK) / requests ))"
}

# Rounds interleave the modes, and each mode is compared with "off" of the same round: on shared
# cores the machine's speed drifts by more than the effect being measured.
read -r -a order <<<"$(mode_order)"
for round in $(seq 1 "$ROUNDS"); do
  for mode in "${order[@]}"; do
    echo "$round $(run_mode "$mode")"
  done
done >"$work/results"
echo "stores: $STORES"
echo "round mode req/s server-cpu-us/request"
cat "$work/results"
echo
report_costs "$work/results" "throughput:3:-1" "server-CPU-per-request:4:1"
