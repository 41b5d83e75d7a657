# Sourced by the CI scripts that drive a running service: one auth-api on a fresh PostgreSQL
# database and Redis key prefix, its mail caught by aiosmtpd, all removed on exit.
#   service_start NAME BINARY PYTHON [VAR=value ...]
# sets SERVICE_PORT and SERVICE_WORK (the server's log, mails.jsonl); `free_port` is exported.
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
SERVICE_PIDS=()

free_port() { "$SERVICE_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

service_cleanup() {
  for pid in "${SERVICE_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$PG_URL" -qc "drop database if exists \"$SERVICE_DB\" with (force)" || true
  redis-cli -h 127.0.0.1 --scan --pattern "$SERVICE_PREFIX*" | xargs -r redis-cli -h 127.0.0.1 del >/dev/null || true
}

service_start() {
  local name="$1" binary="$2"
  SERVICE_PYTHON="$3"
  shift 3
  SERVICE_WORK="$(mktemp -d)"
  SERVICE_DB="auth_${name}_$$"
  SERVICE_PREFIX="$name:$$:"
  SERVICE_PORT="$(free_port)"
  local smtp_port
  smtp_port="$(free_port)"
  trap service_cleanup EXIT
  psql "$PG_URL" -qc "create database \"$SERVICE_DB\""
  "$SERVICE_PYTHON" tests/smtp/server.py --port "$smtp_port" --out "$SERVICE_WORK/mails.jsonl" >/dev/null &
  SERVICE_PIDS+=($!)
  env -i PATH="$PATH" \
    HOST_ADDR="127.0.0.1:$SERVICE_PORT" METRICS_ADDR=off \
    DATABASE_URL="${PG_URL%/*}/$SERVICE_DB" REDIS_URL=redis://127.0.0.1:6379 REDIS_KEY_PREFIX="$SERVICE_PREFIX" \
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
