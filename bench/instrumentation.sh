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
bench_setup

# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run_mode() {
  local mode="$1"
  start_server "$mode"
  local me=(-H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/auth/me")
  wrk -t2 -c32 -d2s "${me[@]}" >/dev/null # warm-up
  local cpu_before; cpu_before=$(cpu_ticks "$SERVER_PID")
  wrk -t2 -c32 -d"${DURATION}s" "${me[@]}" >"$WORK/run.wrk"
  local cpu_after; cpu_after=$(cpu_ticks "$SERVER_PID")
  stop_server
  if grep -q "Non-2xx" "$WORK/run.wrk"; then
    echo "$mode: some responses were not 200, the figures would be meaningless:" >&2
    cat "$WORK/run.wrk" >&2
    exit 1
  fi
  local requests; requests=$(awk '/requests in/ {print $1}' "$WORK/run.wrk")
  # Server CPU time per request (user + system): what the instrumentation itself spends.
  echo "$mode $(awk '/Requests\/sec/ {print $2}' "$WORK/run.wrk") \
    $(( (cpu_after - cpu_before) * 1000000 / $(getconf CLK_TCK) / requests ))"
}

run_rounds "req/s server-cpu-us/request" "throughput:3:-1" "server-CPU-per-request:4:1"
