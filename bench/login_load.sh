#!/usr/bin/env bash
# Login throughput and the process's memory under a login flood, for each HASH_CONCURRENCY given
# (default "1 2"): wrk -c16 on POST /auth/login with the production argon2 cost, embedded stores.
# Prints req/s, latency, and resident memory idle / at the end (VmRSS) / peak (VmHWM).
# These figures size the Kubernetes requests and limits (deploy/k8s). Needs wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/auth-api-target}"
cargo build --release --quiet
binary="$CARGO_TARGET_DIR/release/auth-api"
DURATION="${DURATION:-10}"
work="$(mktemp -d)"
trap 'rm -rf "$work"; [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true' EXIT
cat >"$work/login.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"email":"bench@example.com","password":"correct horse battery staple"}'
wrk.headers["Content-Type"] = "application/json"
LUA
rss() { grep "$1" "/proc/$pid/status" | awk '{print $2 / 1024 " MiB"}'; }
for concurrency in ${CONCURRENCY:-1 2}; do
  rm -f "$work/auth.db"
  SQLITE_PATH="$work/auth.db" HOST_ADDR=127.0.0.1:3911 METRICS_ADDR=127.0.0.1:3912 HASH_CONCURRENCY="$concurrency" \
    RATE_LIMIT_PER_SECOND=1000000 RATE_LIMIT_BURST=1000000 RATE_LIMIT_AUTH_PER_MINUTE=1000000 \
    LOG_FORMAT=json RUST_LOG=warn "$binary" serve >"$work/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 50); do curl -sf localhost:3911/health/ready >/dev/null && break; sleep 0.1; done
  curl -sf localhost:3911/auth/register -H 'content-type: application/json' \
    -d '{"username":"Bench","email":"bench@example.com","password":"correct horse battery staple"}' >/dev/null
  idle="$(rss VmRSS)"
  echo "HASH_CONCURRENCY=$concurrency"
  wrk -t2 -c16 -d"${DURATION}s" -s "$work/login.lua" http://127.0.0.1:3911/auth/login | grep -E "Latency|Requests/sec|Non-2xx"
  echo "  RSS idle $idle, after $(rss VmRSS), peak $(rss VmHWM)"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  pid=
done
