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
metrics_port="$(free_port)"; spa_port="$(free_port)"; evil_port="$(free_port)"; strict_spa_port="$(free_port)"
# Cross-site: the refresh cookie must be SameSite=None; Secure (browsers accept Secure cookies
# from http://localhost). A 2-second access token makes expiry part of the run.
# Passkeys need a domain: the same SPA is also served as http://localhost:A, the relying party.
service_start e2e "$binary" "$python" \
  METRICS_ADDR="127.0.0.1:$metrics_port" PUBLIC_APP_URL="http://127.0.0.1:$spa_port" \
  CORS_ALLOWED_ORIGINS="http://127.0.0.1:$spa_port,http://localhost:$spa_port" COOKIE_SAMESITE=None COOKIE_SECURE=true \
  WEBAUTHN_RP_ID=localhost WEBAUTHN_RP_ORIGINS="http://localhost:$spa_port" \
  ACCESS_TOKEN_TTL=2 JWT_LEEWAY=0 MAX_SESSIONS_PER_USER=10 \
  RATE_LIMIT_PER_SECOND=100000 RATE_LIMIT_BURST=100000 RATE_LIMIT_AUTH_PER_MINUTE=100000
api_port="$SERVICE_PORT"
work="$SERVICE_WORK"
# A second API with the production auth limit lowered, behind a second SPA origin: where the
# SPA meets real 429s (a reload past the per-IP refresh limit, a resend past the per-address
# mail limit).
service_start e2e_strict "$binary" "$python" \
  PUBLIC_APP_URL="http://127.0.0.1:$strict_spa_port" \
  CORS_ALLOWED_ORIGINS="http://127.0.0.1:$strict_spa_port" COOKIE_SAMESITE=None COOKIE_SECURE=true \
  RATE_LIMIT_AUTH_PER_MINUTE=6 MAIL_PER_ADDRESS_PER_HOUR=1
strict_port="$SERVICE_PORT"
status=0
API_URL="http://localhost:$api_port" METRICS_URL="http://127.0.0.1:$metrics_port/metrics" \
  MAILS="$work/mails.jsonl" SPA_PORT="$spa_port" EVIL_PORT="$evil_port" ACCESS_TTL_SECS=2 \
  STRICT_API_URL="http://localhost:$strict_port" STRICT_SPA_PORT="$strict_spa_port" STRICT_AUTH_PER_MINUTE=6 \
  ARTIFACTS="$artifacts" PLAYWRIGHT="$playwright" CHROMIUM="$(command -v chromium)" \
  node tests/e2e/spa.mjs || status=$?
# The passkey sign-in's access token, checked by a JWT library nobody here wrote. It has
# expired by now (2-second tokens): the signature and claims are what is checked.
if [ "$status" -eq 0 ]; then
  "$python" - "http://localhost:$api_port" "$artifacts/passkey-access-token.txt" <<'PY' || status=$?
import sys
import jwt
base, path = sys.argv[1], sys.argv[2]
token = open(path).read().strip()
key = jwt.PyJWKClient(f"{base}/.well-known/jwks.json").get_signing_key_from_jwt(token)
claims = jwt.decode(token, key.key, algorithms=["EdDSA"], audience="auth-api", issuer="auth-api",
                    options={"verify_exp": False})
assert claims["amr"] == ["hwk", "user"] and claims["acr"] == "aal2", claims
print(f"ok  PyJWT verifies the passkey sign-in's token: amr {claims['amr']}, acr {claims['acr']}")
PY
fi
if [ "$status" -ne 0 ]; then
  echo "the API's log:" >&2
  tail -20 "$work/server.log" >&2
fi
exit "$status"
