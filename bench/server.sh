# Shared by instrumentation.sh and instructions.sh (sourced): the instrumentation modes, the
# stores, and a fresh release server with one registered user.
# STORES=embedded (default: SQLite file + in-process sessions) or STORES=postgres (a fresh
# database on BENCH_DATABASE_URL's server and a fresh key prefix on BENCH_REDIS_URL, as in
# production; both default to the local servers), or STORES=cluster (the same database, and
# the Redis Cluster BENCH_REDIS_CLUSTER_NODES names: see bench/cluster.sh). The OTLP sink
# listens on SINK_PORT.
STORES="${STORES:-embedded}"
BENCH_DATABASE_URL="${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
BENCH_REDIS_URL="${BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
BENCH_REDIS_CLUSTER_NODES="${BENCH_REDIS_CLUSTER_NODES:-redis://127.0.0.1:7101,redis://127.0.0.1:7102}"
case "$STORES" in embedded | postgres | cluster) ;; *) echo "STORES is embedded, postgres or cluster" >&2; exit 2 ;; esac

# Modes: everything off; logs only (the JSON access line of every request, with a trace id;
# metrics and tracing off: the baseline of the issue's "metrics + tracing against both off");
# metrics only; metrics + logs (no exporter: nothing is recorded); everything on with every
# request traced and exported; everything on with 10 % head sampling, as deploy/k8s runs it.
declare -A MODES=(
  [off]="METRICS_ADDR=off OTEL_SDK_DISABLED=true RUST_LOG=error"
  [logs]="METRICS_ADDR=off OTEL_SDK_DISABLED=true RUST_LOG=info"
  [metrics]="METRICS_ADDR=127.0.0.1:$METRICS_PORT OTEL_SDK_DISABLED=true RUST_LOG=error"
  [metrics+logs]="METRICS_ADDR=127.0.0.1:$METRICS_PORT RUST_LOG=info"
  [on]="METRICS_ADDR=127.0.0.1:$METRICS_PORT RUST_LOG=info OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$SINK_PORT OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"
  [on-sampled-10%]="METRICS_ADDR=127.0.0.1:$METRICS_PORT RUST_LOG=info OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$SINK_PORT OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.1"
)
# The modes to run: MODES_RUN="off metrics+logs" runs those only ("off" must be among them;
# with "logs" among them too, the "on" modes are also compared with it).
mode_order() {
  if [ -n "${MODES_RUN:-}" ]; then
    echo "$MODES_RUN"
  elif [ "${BREAKDOWN:-0}" = 1 ]; then
    echo "off logs metrics metrics+logs on on-sampled-10%"
  else
    echo "off on on-sampled-10%"
  fi
}

# start_server MODE [COMMAND PREFIX...]: starts the server of MODE on PORT (under the prefix,
# valgrind say), its files in WORK, waits for it, registers a user; sets SERVER_PID and TOKEN.
start_server() {
  local work="$WORK" mode="$1"; shift
  if curl -s "127.0.0.1:$PORT" >/dev/null; then
    echo "port $PORT is taken by another process" >&2
    exit 1
  fi
  local stores=(SQLITE_PATH="$work/$mode.db")
  rm -f "$work/$mode.db"
  if [ "$STORES" != embedded ]; then
    # Errors still show; the NOTICE that a database to drop does not exist does not.
    PGOPTIONS="-c client_min_messages=warning" psql -q "$BENCH_DATABASE_URL" \
      -c "DROP DATABASE IF EXISTS auth_api_bench" -c "CREATE DATABASE auth_api_bench" >&2
    local redis=(REDIS_URL="$BENCH_REDIS_URL")
    [ "$STORES" = cluster ] && redis=(REDIS_CLUSTER_NODES="$BENCH_REDIS_CLUSTER_NODES")
    stores=(DATABASE_URL="${BENCH_DATABASE_URL%/*}/auth_api_bench" "${redis[@]}"
      REDIS_KEY_PREFIX="auth-api-bench-$$-$RANDOM:" ACCESS_TOKEN_SECRET=benchmark-secret-benchmark-secret-0123456789
      KEYS_ENCRYPTION_KEY=YmVuY2htYXJrLWtleXMtZW5jcnlwdGlvbi1rZXkhISE=)
  fi
  # The signing algorithm: HS256 on PostgreSQL (the secret is set) and EdDSA embedded, unless ALG
  # names one.
  if [ -n "${ALG:-}" ]; then
    stores+=(ACCESS_TOKEN_ALG="$ALG")
  fi
  # Rate limits out of the way: this measures instrumentation, and the client is one IP.
  # shellcheck disable=SC2086
  env -i PATH="$PATH" HOST_ADDR="127.0.0.1:$PORT" "${stores[@]}" LOG_FORMAT=json \
    ACCESS_TOKEN_TTL=3600 RATE_LIMIT_PER_SECOND=100000000 RATE_LIMIT_BURST=100000000 \
    RATE_LIMIT_AUTH_PER_MINUTE=100000000 ${MODES[$mode]} "$@" "$BIN" >/dev/null 2>"$work/server.err" &
  SERVER_PID=$!
  for _ in $(seq 1 300); do curl -sf "127.0.0.1:$PORT/health/live" >/dev/null && break; sleep 0.1; done
  TOKEN=$(set -o pipefail; curl -sf "127.0.0.1:$PORT/auth/register" -H 'content-type: application/json' \
    -d '{"username":"bench","email":"bench@example.com","password":"benchmark password"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["content"]["access_token"])')
}

stop_server() {
  kill -TERM "$SERVER_PID"
  wait "$SERVER_PID" || true
}

# Medians, per mode matching the regular expression MODES, of the per-round cost against the
# BASE mode of the same round, from lines "round mode value..."; each "label:column:sign" names a
# figure's column, and its sign says whether fewer is worse (-1, throughput: loss = 1 - v/base)
# or more is worse (1, v/base - 1).
# usage: median_costs FILE BASE MODES "label:column:sign" ...
median_costs() {
  local file="$1" base="$2" modes="$3"; shift 3
  awk -v specs="$*" -v base="$base" -v modes="$modes" '
    BEGIN { n_specs = split(specs, spec, " ") }
    $2 == base { for (s = 1; s <= n_specs; s++) { split(spec[s], f, ":"); off[$1, s] = $(f[2]) }; next }
    $2 !~ modes { next }
    { n[$2]++; for (s = 1; s <= n_specs; s++) { split(spec[s], f, ":")
        cost[$2, s, n[$2]] = (f[3] < 0 ? 1 - $(f[2]) / off[$1, s] : $(f[2]) / off[$1, s] - 1) * 100 } }
    function median(mode, s, count,   i, j, t, v) {
      for (i = 1; i <= count; i++) v[i] = cost[mode, s, i]
      for (i = 1; i <= count; i++) for (j = i + 1; j <= count; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
      return count % 2 ? v[(count + 1) / 2] : (v[count / 2] + v[count / 2 + 1]) / 2
    }
    END {
      for (mode in n) {
        line = sprintf("cost of %s against %s (median of %d rounds):", mode, base, n[mode])
        for (s = 1; s <= n_specs; s++) { split(spec[s], f, ":"); line = line sprintf(" %.1f%% %s%s", median(mode, s, n[mode]), f[1], s < n_specs ? "," : "") }
        print line
      }
    }' "$file"
}

# The costs against "off", and of the "on" modes against "logs" when it ran.
report_costs() {
  local file="$1"; shift
  median_costs "$file" off . "$@"
  if grep -q '^[0-9]* logs ' "$file"; then
    median_costs "$file" logs '^on' "$@"
  fi
}

# Builds the release binary unless BIN names one (to compare two builds), makes WORK (removed on
# exit, when the background jobs are stopped too) and starts the OTLP sink on SINK_PORT. Sets BIN
# and WORK.
bench_setup() {
  if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet
    BIN="${CARGO_TARGET_DIR:-target}/release/auth-api"
  fi
  WORK="$(mktemp -d)"
  trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
  python3 bench/otlp_sink.py "$SINK_PORT" 2>"$WORK/sink.log" &
}

# ROUNDS rounds of the caller's `run_mode MODE` (which prints its figures) over the modes, then
# the table (HEADER names the figures) and the costs (report_costs' specs). Rounds interleave the
# modes and each mode is compared with the baseline of its own round: on shared cores the
# machine's speed drifts by more than the effect being measured.
# usage: run_rounds HEADER "label:column:sign" ...
run_rounds() {
  local header="$1"; shift
  local order round mode
  read -r -a order <<<"$(mode_order)"
  for round in $(seq 1 "$ROUNDS"); do
    for mode in "${order[@]}"; do
      echo "$round $(run_mode "$mode")"
    done
  done >"$WORK/results"
  echo "stores: $STORES"
  echo "round mode $header"
  cat "$WORK/results"
  echo
  report_costs "$WORK/results" "$@"
}
