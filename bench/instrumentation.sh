#!/usr/bin/env bash
# Cost of full instrumentation on GET /auth/me throughput.
#   on:  Prometheus metrics (HTTP RED + domain), tracing with OTLP/HTTP export to a local sink,
#        JSON access logs at info (to /dev/null).
#   off: METRICS_ADDR=off, OTEL_SDK_DISABLED=true, RUST_LOG=error.
# Each run: a fresh release server, one user, a 2 s warm-up, then wrk (2 threads, 32
# connections, DURATION seconds). ROUNDS rounds; medians of per-round costs.
# STORES=embedded (default: SQLite file + in-process sessions) or STORES=postgres (a fresh
# database on BENCH_DATABASE_URL's server and a fresh key prefix on BENCH_REDIS_URL, as in
# production; both default to the local servers).
# Needs wrk (Debian package `wrk`). wrk, the server and the stores share this machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-5}"
PORT=3901 METRICS_PORT=9901 SINK_PORT=4901
STORES="${STORES:-embedded}"
BENCH_DATABASE_URL="${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
BENCH_REDIS_URL="${BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
case "$STORES" in embedded | postgres) ;; *) echo "STORES is embedded or postgres" >&2; exit 2 ;; esac
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
  if curl -s "127.0.0.1:$PORT" >/dev/null; then
    echo "port $PORT is taken by another process" >&2
    exit 1
  fi
  local stores=(SQLITE_PATH="$work/$mode.db")
  rm -f "$work/$mode.db"
  if [ "$STORES" = postgres ]; then
    psql -q "$BENCH_DATABASE_URL" -c "DROP DATABASE IF EXISTS auth_api_bench" -c "CREATE DATABASE auth_api_bench" >&2
    stores=(DATABASE_URL="${BENCH_DATABASE_URL%/*}/auth_api_bench" REDIS_URL="$BENCH_REDIS_URL"
      REDIS_KEY_PREFIX="auth-api-bench-$$-$RANDOM:" ACCESS_TOKEN_SECRET=benchmark-secret-benchmark-secret-0123456789)
  fi
  # Rate limits out of the way: this measures instrumentation, and wrk is one client IP.
  env -i PATH="$PATH" HOST_ADDR="127.0.0.1:$PORT" "${stores[@]}" LOG_FORMAT=json \
    ACCESS_TOKEN_TTL=3600 RATE_LIMIT_PER_SECOND=100000000 RATE_LIMIT_BURST=100000000 \
    RATE_LIMIT_AUTH_PER_MINUTE=100000000 "$@" "$BIN" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do curl -sf "127.0.0.1:$PORT/health/live" >/dev/null && break; sleep 0.1; done
  local token
  token=$(set -o pipefail; curl -sf "127.0.0.1:$PORT/auth/register" -H 'content-type: application/json' \
    -d '{"username":"bench","email":"bench@example.com","password":"benchmark password"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["content"]["access_token"])')
  wrk -t2 -c32 -d2s -H "Authorization: Bearer $token" "http://127.0.0.1:$PORT/auth/me" >/dev/null # warm-up
  local cpu_before; cpu_before=$(cpu_ticks "$pid")
  wrk -t2 -c32 -d"${DURATION}s" -H "Authorization: Bearer $token" "http://127.0.0.1:$PORT/auth/me" >"$work/run.wrk"
  local cpu_after; cpu_after=$(cpu_ticks "$pid")
  kill -TERM "$pid"; wait "$pid" || true
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

# Modes: everything off; metrics only; metrics + logs (no exporter: nothing is recorded, every
# request still logs its access line with a trace id); everything on with every request traced
# and exported; everything on with 10 % head sampling, as deploy/k8s runs it.
declare -A MODES=(
  [off]="METRICS_ADDR=off OTEL_SDK_DISABLED=true RUST_LOG=error"
  [metrics]="METRICS_ADDR=127.0.0.1:$METRICS_PORT OTEL_SDK_DISABLED=true RUST_LOG=error"
  [metrics+logs]="METRICS_ADDR=127.0.0.1:$METRICS_PORT RUST_LOG=info"
  [on]="METRICS_ADDR=127.0.0.1:$METRICS_PORT RUST_LOG=info OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$SINK_PORT OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"
  [on-sampled-10%]="METRICS_ADDR=127.0.0.1:$METRICS_PORT RUST_LOG=info OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$SINK_PORT OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.1"
)
order=(off on on-sampled-10%)
if [ "${BREAKDOWN:-0}" = 1 ]; then order=(off metrics metrics+logs on on-sampled-10%); fi
# MODES_RUN="off metrics+logs" runs those modes only ("off" must be among them).
if [ -n "${MODES_RUN:-}" ]; then read -r -a order <<<"$MODES_RUN"; fi
# Rounds interleave the modes, and each mode is compared with "off" of the same round: on shared
# cores the machine's speed drifts by more than the effect being measured.
for round in $(seq 1 "$ROUNDS"); do
  for mode in "${order[@]}"; do
    # shellcheck disable=SC2086
    line=$(run_mode "$mode" ${MODES[$mode]})
    echo "$round $line"
  done
done >"$work/results"
echo "stores: $STORES"
echo "round mode req/s server-cpu-us/request"
cat "$work/results"
echo
awk '
  $2 == "off" { off_rps[$1] = $3; off_cpu[$1] = $4; next }
  { n[$2]++; tput[$2, n[$2]] = (1 - $3 / off_rps[$1]) * 100; cpu[$2, n[$2]] = ($4 / off_cpu[$1] - 1) * 100 }
  function median(arr, mode, count,   i, j, t, v) {
    for (i = 1; i <= count; i++) v[i] = arr[mode, i]
    for (i = 1; i <= count; i++) for (j = i + 1; j <= count; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return count % 2 ? v[(count + 1) / 2] : (v[count / 2] + v[count / 2 + 1]) / 2
  }
  END {
    for (mode in n) printf "cost of %s against off on /auth/me (median of %d rounds): %.1f%% throughput, %.1f%% CPU per request\n", mode, n[mode], median(tput, mode, n[mode]), median(cpu, mode, n[mode])
  }' "$work/results"
