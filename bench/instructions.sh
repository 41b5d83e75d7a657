#!/usr/bin/env bash
# Instructions the server executes per GET /auth/me, per instrumentation mode, counted by
# valgrind's callgrind: the same figure for the same build and inputs whatever else the machine
# does, where wrk's throughput on shared cores drifts by more than the effect measured. It counts
# user-space work only (all of the server's threads: workers, log writer, span exporter), not
# the kernel's, and not what cache misses cost.
# Each mode: the server under callgrind, one user, WARMUP requests, counters zeroed, then exactly
# REQUESTS requests (4 keep-alive connections), counters dumped. ROUNDS rounds (default 1: runs
# of one build agree within about 1 %). Modes and stores: bench/server.sh. Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS="${REQUESTS:-2000}"
WARMUP="${WARMUP:-400}"
ROUNDS="${ROUNDS:-1}"
PORT=3902 METRICS_PORT=9902 SINK_PORT=4902
BREAKDOWN="${BREAKDOWN:-1}"
source bench/server.sh
command -v callgrind_control >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
bench_setup

run_mode() {
  local mode="$1"
  rm -f "$WORK"/callgrind.out.*
  start_server "$mode" valgrind --tool=callgrind "--callgrind-out-file=$WORK/callgrind.out.%p"
  # valgrind runs the server: the pid callgrind_control needs is the server's own.
  python3 bench/fixed_requests.py "$PORT" "$TOKEN" "$WARMUP" 4
  callgrind_control --zero "$SERVER_PID" >/dev/null 2>&1
  python3 bench/fixed_requests.py "$PORT" "$TOKEN" "$REQUESTS" 4
  callgrind_control --dump "$SERVER_PID" >/dev/null 2>&1
  stop_server
  # The dump of the measured requests is part 1.
  local dump="$WORK/callgrind.out.$SERVER_PID.1"
  local total; total=$(awk '/^summary:/ {print $2}' "$dump")
  # valgrind's CPU has no SHA extensions, so the token's HMAC-SHA-256 runs sha2's software path
  # under it, ~30k instructions where the real CPU spends a few thousand: also given without.
  local sha; sha=$(callgrind_annotate --inclusive=yes --threshold=100 "$dump" 2>/dev/null |
    awk '/sha2::sha256::compress256 / {gsub(",", "", $1); print $1; exit}')
  echo "$mode $(( total / REQUESTS )) $(( (total - ${sha:-0}) / REQUESTS ))"
}

run_rounds "instructions/request without-SHA-256" "instructions-per-request:3:1" "without-SHA-256:4:1"
