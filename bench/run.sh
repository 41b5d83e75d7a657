#!/usr/bin/env bash
# The endpoint table: requests/s, p50, p99 and errors (non-2xx answers and socket errors) per
# endpoint with wrk, and the server's peak RSS, on one fresh release server (STORES=postgres for
# PostgreSQL + Redis, as production runs; embedded by default), with the production argon2 cost.
#   STORES=postgres DURATION=6 CONNECTIONS=32 bash bench/run.sh
# Endpoints: GET /, GET /auth/me, POST /auth/refreshAccessToken (each connection follows its own
# session's rotation), POST /auth/login, POST /auth/register (a new email each time),
# GET /.well-known/jwks.json; a mixed SPA-like workload; GET /auth/me while logins keep the
# hashing pool full; and a bare actix-web GET / (BARE=path of the bare_actix example, built when
# unset) as the framework floor. Limits are raised far above the load.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-3099}"
METRICS_PORT="${METRICS_PORT:-9199}"
SINK_PORT="${SINK_PORT:-4399}"
DURATION="${DURATION:-6}"
CONNECTIONS="${CONNECTIONS:-32}"
SESSIONS="${SESSIONS:-16}"
# shellcheck source=bench/server.sh
. bench/server.sh
bench_setup
# BENCH_ENV: further settings for the server, e.g. BENCH_ENV="SESSION_CACHE_MS=0".
# Every login of the table opens a session of the one bench user: the limit is above all of
# them, so that the session of the token /auth/me presents is never evicted mid-table.
# shellcheck disable=SC2086
start_server logs MAX_SESSIONS_PER_USER=100000 LOGIN_MAX_FAILURES=100000000 MAIL_PER_ADDRESS_PER_HOUR=100000000 ${BENCH_ENV:-}
base="http://127.0.0.1:$PORT"

# peak_rss WHILE_PID FILE: the server's peak RSS (KiB) into FILE, sampled every 100 ms while
# process WHILE_PID lives.
peak_rss() {
  (
    peak=0
    while kill -0 "$1" 2>/dev/null; do
      rss=$(awk '/VmRSS/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0)
      [ "${rss:-0}" -gt "$peak" ] && peak=$rss && echo "$peak" >"$2"
      sleep 0.1
    done
  ) &
}
# Over the whole table.
peak_rss "$SERVER_PID" "$WORK/peak_rss_kib"

# One refresh cookie per wrk connection (one thread each), for the refresh run.
for i in $(seq 1 "$SESSIONS"); do
  curl -s -D - -o /dev/null "$base/auth/login" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"benchmark password"}' |
    sed -n 's/^set-cookie: jwt=\([^;]*\).*/\1/ip'
done >"$WORK/cookies"
# And one per connection of the mixed run (the refresh run leaves the first set rotated away).
for i in $(seq 1 "$SESSIONS"); do
  curl -s -D - -o /dev/null "$base/auth/login" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"benchmark password"}' |
    sed -n 's/^set-cookie: jwt=\([^;]*\).*/\1/ip'
done >"$WORK/cookies2"

# wrk runs response() in each thread's own Lua state: each thread counts its non-2xx answers
# and done() (in the main state) sums them through the threads table.
cat >"$WORK/common.lua" <<'LUA'
local threads = {}
function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
  if setup_thread then setup_thread(thread, #threads) end
end
non2xx = 0
function count(status)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end
function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + (t:get("non2xx") or 0) end
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %.0f %.2f %.2f %d %.2f\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors + bad, latency:percentile(99.9) / 1000))
end
LUA
script() { # NAME BODY: a wrk script of common.lua plus BODY
  { cat "$WORK/common.lua"; printf '%s\n' "$2"; } >"$WORK/$1.lua"
}
script get 'function response(status) count(status) end'
script me "wrk.headers[\"Authorization\"] = \"Bearer $TOKEN\"
function response(status) count(status) end"
script jwks 'function response(status) count(status) end'
cookies_lua=$(awk '{printf "\"%s\",", $0}' "$WORK/cookies")
script refresh "local cookies = {$cookies_lua}
function setup_thread(thread, n) thread:set(\"cookie\", cookies[n]) end
wrk.method = \"POST\"
function request() return wrk.format(nil, nil, {Cookie = \"jwt=\" .. cookie}) end
function response(status, headers)
  count(status)
  local set = headers[\"Set-Cookie\"] or headers[\"set-cookie\"]
  if set then cookie = set:match(\"jwt=([^;]+)\") or cookie end
end"
script login 'wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[{"email":"bench@example.com","password":"benchmark password"}]]
function response(status) count(status) end'
script register 'wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
function request()
  n = n + 1
  return wrk.format(nil, nil, nil, string.format([[{"username":"b","email":"r%d-%d@example.com","password":"benchmark password"}]], id, n))
end
function response(status) count(status) end'

# Mixed, per connection: /auth/me 8 calls in 10, the JWKS 1, a refresh of the connection's own
# session 1 (its access token replaces the shared one).
cookies2_lua=$(awk '{printf "\"%s\",", $0}' "$WORK/cookies2")
script mixed "local cookies = {$cookies2_lua}
function setup_thread(thread, n) thread:set(\"cookie\", cookies[n]) end
local n = 0
function request()
  n = n + 1
  if n % 10 == 0 then
    return wrk.format(\"POST\", \"/auth/refreshAccessToken\", {Cookie = \"jwt=\" .. cookie})
  elseif n % 10 == 5 then
    return wrk.format(\"GET\", \"/.well-known/jwks.json\")
  end
  return wrk.format(\"GET\", \"/auth/me\", {Authorization = \"Bearer $TOKEN\"})
end
function response(status, headers)
  count(status)
  local set = headers[\"Set-Cookie\"] or headers[\"set-cookie\"]
  if set then cookie = set:match(\"jwt=([^;]+)\") or cookie end
end"

# churn_row LABEL: /auth/me's p99, p99.9 and errors, as a row of the churn table.
churn_row() {
  local out
  out=$(wrk -t"$threads" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WORK/me.lua" "$base/auth/me" | awk '/^RESULT/')
  printf '| %s | %s |\n' "$1" "$(echo "$out" | awk '{printf "%s | %s | %s | %s", $2, $4, $6, $5}')"
}

run() { # LABEL PATH SCRIPT THREADS CONNECTIONS
  local out
  out=$(wrk -t"$4" -c"$5" -d"${DURATION}s" --latency -s "$WORK/$3.lua" "$base$2" | awk '/^RESULT/ {print $2, $3, $4, $5}')
  printf '| %s | %s |\n' "$1" "$(echo "$out" | awk '{printf "%s | %s | %s | %s", $1, $2, $3, $4}')"
  LAST_RATE=$(echo "$out" | awk '{print $1}')
}

threads=$(( CONNECTIONS < 2 ? 1 : 2 ))
echo "stores: $STORES; $CONNECTIONS connections ($SESSIONS for refresh, one per thread); ${DURATION}s each; commit $(git rev-parse --short HEAD)"
echo

# Connection churn: GET /auth/me on keep-alive connections while 32 other clients keep opening a
# connection, sending GET /auth/me and hanging up mid-request; then the same load after it.
# Errors are non-2xx answers (a 503 when a pool gave up) and socket errors. ONLY=churn runs
# just this table.
echo "| under churn (GET /auth/me) | requests/s | p99 ms | p99.9 ms | errors |"
echo "|---|---|---|---|---|"
python3 bench/churn.py "$PORT" "$TOKEN" "$DURATION" 32 >"$WORK/abandoned" &
churn=$!
churn_row "while 32 clients hang up mid-request"
wait "$churn"
churn_row "right after"
echo "| (requests abandoned by the churn) | $(cat "$WORK/abandoned") | | | |"
echo
if [ "${ONLY:-}" = churn ]; then
  stop_server
  exit 0
fi
echo "| endpoint | requests/s | p50 ms | p99 ms | errors |"
echo "|---|---|---|---|---|"
run "GET /" / get "$threads" "$CONNECTIONS"
run "GET /auth/me" /auth/me me "$threads" "$CONNECTIONS"
run "GET /.well-known/jwks.json" /.well-known/jwks.json jwks "$threads" "$CONNECTIONS"
run "POST /auth/refreshAccessToken ($SESSIONS sessions)" /auth/refreshAccessToken refresh "$SESSIONS" "$SESSIONS"
# One login's time alone (median of 9 sequential ones): the argon2 limit is cores ÷ that.
one_login=$(for _ in $(seq 1 9); do
  curl -s -o /dev/null -w '%{time_total}\n' "$base/auth/login" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"benchmark password"}'
done | sort -n | sed -n 5p)
run "POST /auth/login" /auth/login login "$threads" "$CONNECTIONS"
login_note=$(awk -v rate="$LAST_RATE" -v t="$one_login" -v cores="$(nproc)" \
  'BEGIN {printf "login: %s/s = %.0f %% of the argon2 limit (%d cores / one login alone, %.1f ms)", rate, 100 * rate * t / cores, cores, t * 1000}')
run "POST /auth/register" /auth/register register "$threads" "$CONNECTIONS"
run "mixed: 80 % /auth/me, 10 % JWKS, 10 % refresh ($SESSIONS sessions)" / mixed "$SESSIONS" "$SESSIONS"
# /auth/me while 8 connections keep every hashing thread busy with logins.
wrk -t1 -c8 -d"$((DURATION + 2))s" -s "$WORK/login.lua" "$base/auth/login" | awk '/^RESULT/ {print $2}' >"$WORK/login_rate" &
login_load=$!
peak_rss "$login_load" "$WORK/login_rss_kib"
sleep 1
run "GET /auth/me, logins saturating the hashing pool" /auth/me me "$threads" "$CONNECTIONS"
wait "$login_load"
echo "| (logins/s meanwhile) | $(cat "$WORK/login_rate") | | | |"
stop_server

# The framework floor: a bare actix-web GET / on the same machine, right after ours.
if [ -z "${BARE:-}" ]; then
  cargo build --release --quiet --example bare_actix
  BARE="${CARGO_TARGET_DIR:-target}/release/examples/bare_actix"
fi
HOST_ADDR="127.0.0.1:$((PORT + 1))" "$BARE" &
bare=$!
for _ in $(seq 1 100); do curl -sf "127.0.0.1:$((PORT + 1))/" >/dev/null && break; sleep 0.1; done
base="http://127.0.0.1:$((PORT + 1))"
run "bare actix-web GET / (the floor)" / get "$threads" "$CONNECTIONS"
kill "$bare"
echo
echo "$login_note"
echo "peak RSS: $(( $(cat "$WORK/peak_rss_kib" 2>/dev/null || echo 0) / 1024 )) MiB over the whole table," \
  "$(( $(cat "$WORK/login_rss_kib" 2>/dev/null || echo 0) / 1024 )) MiB under the login flood"
