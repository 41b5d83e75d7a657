#!/usr/bin/env bash
# Cost of full instrumentation on GET /auth/me throughput.
#   on:  Prometheus metrics (HTTP RED + domain), tracing with OTLP/HTTP export to a local sink,
#        JSON access logs at info (to /dev/null).
#   off: METRICS_ADDR=off, OTEL_SDK_DISABLED=true, RUST_LOG=error.
# Each mode: a fresh release server on the embedded stores, one user, then wrk runs
# (2 threads, 32 connections, DURATION seconds each, RUNS times); the median is reported.
# Needs wrk (Debian package `wrk`). Both wrk and the server share this machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-10}"
RUNS="${RUNS:-3}"
PORT=3901 METRICS_PORT=9901 SINK_PORT=4901
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-target}/release/auth-api"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

python3 bench/otlp_sink.py "$SINK_PORT" 2>"$work/sink.log" &

# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run_mode() {
  local mode="$1"; shift
  # Rate limits out of the way: this measures instrumentation, and wrk is one client IP.
  env -i PATH="$PATH" HOST_ADDR="127.0.0.1:$PORT" SQLITE_PATH="$work/$mode.db" LOG_FORMAT=json \
    ACCESS_TOKEN_TTL=3600 RATE_LIMIT_PER_SECOND=100000000 RATE_LIMIT_BURST=100000000 \
    RATE_LIMIT_AUTH_PER_MINUTE=100000000 "$@" "$BIN" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do curl -sf "127.0.0.1:$PORT/health/live" >/dev/null && break; sleep 0.1; done
  local token
  token=$(curl -sf "127.0.0.1:$PORT/auth/register" -H 'content-type: application/json' \
    -d '{"username":"bench","email":"bench@example.com","password":"benchmark password"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["content"]["access_token"])')
  wrk -t2 -c32 -d2s -H "Authorization: Bearer $token" "http://127.0.0.1:$PORT/auth/me" >/dev/null # warm-up
  local rates=() requests=0
  local cpu_before; cpu_before=$(cpu_ticks "$pid")
  for _ in $(seq 1 "$RUNS"); do
    wrk -t2 -c32 -d"${DURATION}s" --latency -H "Authorization: Bearer $token" \
      "http://127.0.0.1:$PORT/auth/me" > "$work/run.wrk"
    cat "$work/run.wrk" >> "$work/$mode.wrk"
    if grep -q "Non-2xx" "$work/run.wrk"; then
      echo "$mode: some responses were not 200, the figures would be meaningless:" >&2
      cat "$work/run.wrk" >&2
      exit 1
    fi
    rates+=("$(awk '/Requests\/sec/ {print $2}' "$work/run.wrk")")
    requests=$((requests + $(awk '/requests in/ {print $1}' "$work/run.wrk")))
  done
  local cpu_after; cpu_after=$(cpu_ticks "$pid")
  kill -TERM "$pid"; wait "$pid" || true
  # Server CPU time per request (user + system), the figure least disturbed by wrk sharing the cores.
  local cpu_us; cpu_us=$(( (cpu_after - cpu_before) * 1000000 / $(getconf CLK_TCK) / requests ))
  printf '%s\n' "${rates[@]}" | sort -n | awk -v mode="$mode" -v cpu="$cpu_us" \
    '{a[NR]=$1} END {printf "%s %s %s\n", mode, a[int((NR+1)/2)], cpu}'
  grep -E '^ +(50|99)%' "$work/$mode.wrk" | tail -2 | sed "s/^/  $mode latency /" >&2
}

off=$(run_mode off METRICS_ADDR=off OTEL_SDK_DISABLED=true RUST_LOG=error)
if [ "${BREAKDOWN:-0}" = 1 ]; then
  # Each layer on its own, to see where the cost goes.
  run_mode metrics METRICS_ADDR="127.0.0.1:$METRICS_PORT" OTEL_SDK_DISABLED=true RUST_LOG=error
  run_mode metrics+logs METRICS_ADDR="127.0.0.1:$METRICS_PORT" OTEL_SDK_DISABLED=true RUST_LOG=info
  run_mode metrics+logs+spans METRICS_ADDR="127.0.0.1:$METRICS_PORT" RUST_LOG=info
  run_mode on-sampled-10% METRICS_ADDR="127.0.0.1:$METRICS_PORT" RUST_LOG=info \
    OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.1 \
    OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$SINK_PORT" OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf
fi
on=$(run_mode on METRICS_ADDR="127.0.0.1:$METRICS_PORT" RUST_LOG=info \
  OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$SINK_PORT" OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf)
echo "$off"
echo "$on"
echo "mode req/s(median) server-cpu-us/request"
echo "$off $on" | awk '{printf "instrumentation cost on /auth/me: %.1f%% throughput (%s -> %s req/s), %.1f%% CPU per request (%s -> %s us)\n", (1 - $5 / $2) * 100, $2, $5, ($6 / $3 - 1) * 100, $3, $6}'
