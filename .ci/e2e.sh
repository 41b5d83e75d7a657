#!/usr/bin/env bash
# The example SPA in headless Chromium (tests/e2e/spa.mjs): the SPA on http://127.0.0.1:A, the
# API on http://localhost:B (another site), on PostgreSQL + Redis, mail caught by aiosmtpd.
#   .ci/e2e.sh <auth-api binary> <python with aiosmtpd> <playwright-core directory>
set -euo pipefail
binary="$1"
python="$2"
playwright="$3"
cd "$(dirname "$0")/.."
artifacts="${E2E_ARTIFACTS:-/tmp/auth-api-e2e}"
# shellcheck source=.ci/service.sh
. .ci/service.sh
SERVICE_PYTHON="$python"
metrics_port="$(free_port)"; spa_port="$(free_port)"; evil_port="$(free_port)"
# Cross-site: the refresh cookie must be SameSite=None; Secure (browsers accept Secure cookies
# from http://localhost). A 2-second access token makes expiry part of the run.
service_start e2e "$binary" "$python" \
  METRICS_ADDR="127.0.0.1:$metrics_port" PUBLIC_APP_URL="http://127.0.0.1:$spa_port" \
  CORS_ALLOWED_ORIGINS="http://127.0.0.1:$spa_port" COOKIE_SAMESITE=None COOKIE_SECURE=true \
  ACCESS_TOKEN_TTL=2 JWT_LEEWAY=0 MAX_SESSIONS_PER_USER=10 \
  RATE_LIMIT_PER_SECOND=100000 RATE_LIMIT_BURST=100000 RATE_LIMIT_AUTH_PER_MINUTE=100000
api_port="$SERVICE_PORT"
work="$SERVICE_WORK"
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
