# Sourced by the CI scripts that drive running services: each call starts one auth-api on a
# fresh PostgreSQL database and Redis key prefix, its mail caught by aiosmtpd; all are removed
# on exit.
#   service_start NAME BINARY PYTHON [VAR=value ...]
# sets SERVICE_PORT and SERVICE_WORK (the server's log, mails.jsonl); `free_port` is exported.
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
SERVICE_PIDS=()
SERVICE_DBS=()
SERVICE_PREFIXES=()

free_port() { "$SERVICE_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

service_cleanup() {
  for pid in "${SERVICE_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for db in "${SERVICE_DBS[@]}"; do
    psql "$PG_URL" -qc "drop database if exists \"$db\" with (force)" || true
  done
  for prefix in "${SERVICE_PREFIXES[@]}"; do
    redis-cli -h 127.0.0.1 --scan --pattern "$prefix*" | xargs -r redis-cli -h 127.0.0.1 del >/dev/null || true
  done
}

service_start() {
  local name="$1" binary="$2"
  SERVICE_PYTHON="$3"
  shift 3
  SERVICE_WORK="$(mktemp -d)"
  local db="auth_${name}_$$" prefix="$name:$$:"
  SERVICE_DBS+=("$db")
  SERVICE_PREFIXES+=("$prefix")
  SERVICE_PORT="$(free_port)"
  local smtp_port
  smtp_port="$(free_port)"
  trap service_cleanup EXIT
  psql "$PG_URL" -qc "create database \"$db\""
  "$SERVICE_PYTHON" tests/smtp/server.py --port "$smtp_port" --out "$SERVICE_WORK/mails.jsonl" >/dev/null &
  SERVICE_PIDS+=($!)
  env -i PATH="$PATH" \
    HOST_ADDR="127.0.0.1:$SERVICE_PORT" METRICS_ADDR=off \
    DATABASE_URL="${PG_URL%/*}/$db" REDIS_URL=redis://127.0.0.1:6379 REDIS_KEY_PREFIX="$prefix" \
    KEYS_ENCRYPTION_KEY="$(head -c 32 /dev/urandom | base64)" \
    SMTP_URL="smtp://127.0.0.1:$smtp_port" \
    LOG_FORMAT=json RUST_LOG=warn \
    "$@" \
    "$binary" >"$SERVICE_WORK/server.log" 2>&1 &
  SERVICE_PIDS+=($!)
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$SERVICE_PORT/health/ready" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "auth-api did not become ready:" >&2
  cat "$SERVICE_WORK/server.log" >&2
  return 1
}
