#!/usr/bin/env bash
# Fuzzes the running service from its own OpenAPI document with schemathesis, every check on,
# on PostgreSQL + Redis with a real SMTP server, and fails on any finding or when fewer than
# MIN_REQUESTS requests were made.
#   .ci/schemathesis.sh <auth-api binary> <python with schemathesis and aiosmtpd>
set -euo pipefail
binary="$1"
python="$2"
st="$(dirname "$python")/schemathesis"
cd "$(dirname "$0")/.."
MIN_REQUESTS="${MIN_REQUESTS:-1000}"
# shellcheck source=.ci/service.sh
. .ci/service.sh
# Limits far above the run's load: what is fuzzed is the contract, not the limiters.
SERVICE_PYTHON="$python"
admin_port="$(free_port)"
service_start fuzz "$binary" "$python" ADMIN_ADDR="127.0.0.1:$admin_port" \
  RATE_LIMIT_PER_SECOND=1000000 RATE_LIMIT_BURST=1000000 RATE_LIMIT_AUTH_PER_MINUTE=1000000 \
  LOGIN_MAX_FAILURES=1000000 MAX_SESSIONS_PER_USER=100000 MAIL_PER_ADDRESS_PER_HOUR=1000000 \
  ARGON2_MEMORY_KIB=1024 ARGON2_ITERATIONS=1 COOKIE_SECURE=false
work="$SERVICE_WORK"
base="http://127.0.0.1:$SERVICE_PORT"
# The account schemathesis signs in with (its token comes from POST /auth/login).
password="fuzzing-account-$$-passphrase"
curl -fsS "$base/auth/register" -H 'content-type: application/json' \
  -d "{\"username\":\"Fuzz\",\"email\":\"fuzz@example.com\",\"password\":\"$password\"}" >/dev/null
cat >"$work/schemathesis.toml" <<TOML
[auth.dynamic.openapi.bearer]
path = "/auth/login"
payload = { email = "fuzz@example.com", password = "$password" }
extract_selector = "/content/access_token"

# Three rules no schema states: a password among the 10,000 most common is refused (400
# VALIDATION_ERROR), a well-formed link token that was never issued is refused (400
# INVALID_RESET_TOKEN / INVALID_VERIFY_TOKEN), and so is an events page cursor (after) the
# service did not hand out (400 VALIDATION_ERROR). A second factor is a code or a
# recovery code, never both (400), and the fuzzing account has no factor to confirm, renew or
# remove (409 MFA_NOT_ENABLED). A passkey ceremony the service did not start is refused (400
# PASSKEY_CEREMONY_INVALID), a login challenge it did not issue too (401), a passkey id that is
# not the account's is 404 and a password that is not the account's 403. For these operations,
# and for these reasons only, 400 is an expected answer to schema-valid data.
[[operations]]
include-operation-id = ["register", "create_or_login", "change", "reset", "verify", "events", "revoke_all", "mfa_enrol", "mfa_confirm", "mfa_recovery_codes", "mfa_remove", "mfa_verify", "passkey_register_start", "passkey_register_finish", "passkey_rename", "passkey_remove", "passkey_sign_up_start", "passkey_sign_up_finish", "passkey_login_start", "passkey_login_finish"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]
TOML

# The admin listener's document, with a key made by the CLI on the same database.
admin_key="$(env -i PATH="$PATH" DATABASE_URL="${PG_URL%/*}/auth_fuzz_$$" REDIS_URL=redis://127.0.0.1:6379 \
  KEYS_ENCRYPTION_KEY="$(head -c 32 /dev/urandom | base64)" LOG_FORMAT=json RUST_LOG=warn \
  "$binary" admin-keys create fuzzing 2>/dev/null)"
[ -n "$admin_key" ] || { echo "FAIL: auth-api admin-keys create made no key" >&2; exit 1; }

# Two rules no schema states: a disabling's `until` is in the future, and its reason has no
# control characters (400 VALIDATION_ERROR for schema-valid data, on this operation only).
cat >"$work/schemathesis-admin.toml" <<TOML
[[operations]]
include-operation-id = ["admin_disable"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404"]
TOML

status=0
"$st" --config-file "$work/schemathesis.toml" --no-color run "$base/openapi.json" \
  --checks all --max-examples "${MAX_EXAMPLES:-60}" --workers 2 --seed "${SEED:-20261202}" \
  --request-timeout 10 --report ndjson --report-ndjson-path "$work/events.ndjson" \
  --suppress-health-check too_slow >"$work/schemathesis.log" 2>&1 || status=$?
tail -40 "$work/schemathesis.log"
[ "$status" -eq 0 ] || cp "$work/schemathesis.log" "${SCHEMATHESIS_LOG:-/tmp/schemathesis.log}"
# The admin run comes after: it may disable or erase the account the public run signs in with.
"$st" --config-file "$work/schemathesis-admin.toml" --no-color run "http://127.0.0.1:$admin_port/openapi.json" -H "Authorization: Bearer $admin_key" \
  --checks all --max-examples "${MAX_EXAMPLES:-60}" --workers 2 --seed "${SEED:-20261202}" \
  --request-timeout 10 --suppress-health-check too_slow >"$work/schemathesis-admin.log" 2>&1 || status=$?
tail -15 "$work/schemathesis-admin.log"
[ "$status" -eq 0 ] || cp "$work/schemathesis-admin.log" "${SCHEMATHESIS_LOG:-/tmp/schemathesis-admin.log}"
requests="$("$python" - "$work/events.ndjson" <<'PY'
import json, sys
count = 0
for line in open(sys.argv[1]):
    event = json.loads(line)
    # Every interaction recorded by a finished scenario is one HTTP request.
    for key in ("ScenarioFinished",):
        if key in event:
            count += len(event[key].get("recorder", {}).get("interactions", {}))
print(count)
PY
)"
echo "schemathesis made $requests requests"
# actix-http logs a client's malformed request head at ERROR (target actix_http::h1::dispatcher):
# that is the fuzzer's doing, not the service's.
if grep '"level":"ERROR"' "$work/server.log" | grep -qv 'actix_http::h1::dispatcher'; then
  echo "FAIL: the service logged errors during the run:" >&2
  grep '"level":"ERROR"' "$work/server.log" | head -5 >&2
  status=1
fi
if [ "$requests" -lt "$MIN_REQUESTS" ]; then
  echo "FAIL: fewer than $MIN_REQUESTS requests" >&2
  status=1
fi
exit "$status"
