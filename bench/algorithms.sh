#!/usr/bin/env bash
# GET /auth/me throughput per signing algorithm (HS256, EdDSA, ES256), everything else equal:
# metrics and tracing off, the access log on (the `logs` mode). ROUNDS rounds interleave the
# algorithms; medians are reported. STORES and BIN as in server.sh. Needs wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-6}"
ROUNDS="${ROUNDS:-3}"
PORT=3902 METRICS_PORT=9902 SINK_PORT=4902
source bench/server.sh
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
bench_setup
for round in $(seq 1 "$ROUNDS"); do
  for ALG in HS256 EdDSA ES256; do
    start_server logs
    me=(-H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/auth/me")
    wrk -t2 -c32 -d2s "${me[@]}" >/dev/null
    wrk -t2 -c32 -d"${DURATION}s" --latency "${me[@]}" >"$WORK/run.wrk"
    stop_server
    if grep -q "Non-2xx" "$WORK/run.wrk"; then cat "$WORK/run.wrk" >&2; exit 1; fi
    echo "$round $ALG $(awk '/Requests\/sec/ {print $2}' "$WORK/run.wrk") $(awk '$1 == "99%" {print $2}' "$WORK/run.wrk")"
  done
done >"$WORK/results"
echo "stores: $STORES"
echo "round alg req/s p99"
cat "$WORK/results"
awk '{ v[$2] = v[$2] " " $3 } END { for (a in v) { n = split(v[a], x, " "); asort(x); print a ": median " x[int((n + 1) / 2)] " req/s" } }' "$WORK/results" | sort
