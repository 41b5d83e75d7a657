#!/usr/bin/env bash
# The example SPA in headless Chromium (tests/e2e/spa.mjs): the SPA on http://127.0.0.1:A, the
# API on http://localhost:B (another site), on PostgreSQL + Redis, mail caught by aiosmtpd.
#   .ci/e2e.sh <auth-api binary> <python with aiosmtpd> <playwright-core directory>
set -euo pipefail
binary="$1"
python="$2"
playwright="$3"
cd "$(dirname "$0")/.."
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
work="$(mktemp -d)"
artifacts="${E2E_ARTIFACTS:-/tmp/auth-api-e2e}"
db="auth_e2e_$$"
free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api_port="$(free_port)"; metrics_port="$(free_port)"; smtp_port="$(free_port)"
spa_port="$(free_port)"; evil_port="$(free_port)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$PG_URL" -qc "drop database if exists \"$db\" with (force)" || true
  redis-cli -h 127.0.0.1 --scan --pattern "e2e:$$:*" | xargs -r redis-cli -h 127.0.0.1 del >/dev/null || true
}
trap cleanup EXIT

psql "$PG_URL" -qc "create database \"$db\""
"$python" tests/smtp/server.py --port "$smtp_port" --out "$work/mails.jsonl" >/dev/null &
pids+=($!)
# Cross-site: the refresh cookie must be SameSite=None; Secure (browsers accept Secure cookies
# from http://localhost). A 2-second access token makes expiry part of the run.
env -i PATH="$PATH" \
  HOST_ADDR="127.0.0.1:$api_port" METRICS_ADDR="127.0.0.1:$metrics_port" \
  DATABASE_URL="${PG_URL%/*}/$db" REDIS_URL=redis://127.0.0.1:6379 REDIS_KEY_PREFIX="e2e:$$:" \
  KEYS_ENCRYPTION_KEY="$(head -c 32 /dev/urandom | base64)" \
  SMTP_URL="smtp://127.0.0.1:$smtp_port" PUBLIC_APP_URL="http://127.0.0.1:$spa_port" \
  CORS_ALLOWED_ORIGINS="http://127.0.0.1:$spa_port" COOKIE_SAMESITE=None COOKIE_SECURE=true \
  ACCESS_TOKEN_TTL=2 JWT_LEEWAY=0 MAX_SESSIONS_PER_USER=10 \
  RATE_LIMIT_PER_SECOND=100000 RATE_LIMIT_BURST=100000 RATE_LIMIT_AUTH_PER_MINUTE=100000 \
  LOG_FORMAT=json RUST_LOG=warn \
  "$binary" >"$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$api_port/health/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
status=0
API_URL="http://localhost:$api_port" METRICS_URL="http://127.0.0.1:$metrics_port/metrics" \
  MAILS="$work/mails.jsonl" SPA_PORT="$spa_port" EVIL_PORT="$evil_port" ACCESS_TTL_SECS=2 \
  ARTIFACTS="$artifacts" PLAYWRIGHT="$playwright" CHROMIUM="$(command -v chromium)" \
  node tests/e2e/spa.mjs || status=$?
if [ "$status" -ne 0 ]; then
  echo "the API's log:" >&2
  tail -20 "$work/server.log" >&2
fi
exit "$status"
