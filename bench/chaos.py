#!/usr/bin/env python3
"""Chaos run: steady mixed load on a release server while its Redis, then its PostgreSQL, is
stopped and started again. Both are private instances made for the run (a redis-server with the
append-only file on, as in compose, and a PostgreSQL cluster made with initdb), never the
machine's shared ones.

Per phase it reports the answers by status and error code, the slowest request, and, after the
dependency returns, the time until every request succeeds again; at the end it checks that
nothing was lost: every user made before the outages logs in, and every session refreshes.
Exits non-zero when a behaviour target is missed (a 500, a socket error, a request slower than
STORE_TIMEOUT_MS plus a margin, a lost user or session); timings are reported, not asserted.

    BIN=target/release/auth-api python3 bench/chaos.py
Settings: BIN, WORKERS (8), OUTAGE seconds (4), STORE_TIMEOUT_MS (1000).
"""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

BIN = os.environ.get("BIN", "target/release/auth-api")
WORKERS = int(os.environ.get("WORKERS", "8"))
OUTAGE = float(os.environ.get("OUTAGE", "4"))
STORE_TIMEOUT_MS = int(os.environ.get("STORE_TIMEOUT_MS", "1000"))
MARGIN_MS = 500
PASSWORD = "chaos password 1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, limit=30):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def pg_bin(name):
    versions = sorted(os.listdir("/usr/lib/postgresql"))
    return f"/usr/lib/postgresql/{versions[-1]}/bin/{name}"


class Stores:
    """A private Redis (AOF on) and a private PostgreSQL cluster in a temp dir."""

    def __init__(self, root):
        self.root = root
        self.redis_port, self.pg_port = free_port(), free_port()
        self.redis_dir = os.path.join(root, "redis")
        os.makedirs(self.redis_dir)
        self.pg_dir = os.path.join(root, "pg")
        os.makedirs(self.pg_dir)
        shutil.chown(self.pg_dir, "postgres", "postgres")
        self.as_postgres([pg_bin("initdb"), "-D", self.pg_dir, "-A", "trust", "-U", "postgres"])
        self.redis = None

    @staticmethod
    def as_postgres(argv):
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(prefix + argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start_redis(self):
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--dir", self.redis_dir,
             "--appendonly", "yes", "--save", ""],
            stdout=subprocess.DEVNULL,
        )
        wait_port(self.redis_port)

    def stop_redis(self):
        # SIGTERM: Redis writes out its append-only file and exits (a clean stop or restart).
        self.redis.send_signal(signal.SIGTERM)
        self.redis.wait()

    def start_pg(self):
        self.as_postgres([pg_bin("pg_ctl"), "-D", self.pg_dir, "-l", os.path.join(self.pg_dir, "server.log"), "-w",
                          "-o", f"-p {self.pg_port} -k {self.pg_dir} -c listen_addresses=127.0.0.1", "start"])

    def stop_pg(self):
        # Immediate: the server dies without a checkpoint, as in a crash; committed work is in
        # the WAL.
        self.as_postgres([pg_bin("pg_ctl"), "-D", self.pg_dir, "-m", "immediate", "-w", "stop"])

    def close(self):
        if self.redis and self.redis.poll() is None:
            self.redis.kill()
        subprocess.run(["runuser", "-u", "postgres", "--", pg_bin("pg_ctl"), "-D", self.pg_dir, "-m", "immediate",
                        "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Client:
    def __init__(self, port):
        self.port = port
        self.conn = None

    def call(self, method, path, body=None, headers=None):
        headers = dict(headers or {})
        if body is not None:
            body = json.dumps(body)
            headers["Content-Type"] = "application/json"
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                self.conn.request(method, path, body, headers)
                response = self.conn.getresponse()
                data = response.read()
                return response.status, response.getheader("set-cookie"), data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A keep-alive connection the server closed between requests: reconnect once.
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


def code_of(data):
    try:
        return json.loads(data)["content"].get("error_code", "")
    except Exception:
        return ""


def cookie_of(set_cookie):
    if set_cookie and set_cookie.startswith("jwt="):
        return set_cookie.split(";")[0][4:]
    return None


class Worker(threading.Thread):
    """One user: /auth/me with its access token; every 5th call a refresh, every 40th a login."""

    def __init__(self, port, n, log, stop):
        super().__init__(daemon=True)
        self.client, self.email, self.log, self.stop = Client(port), f"chaos{n}@example.com", log, stop
        status, cookie, data = self.client.call(
            "POST", "/auth/register", {"username": "Chaos", "email": self.email, "password": PASSWORD})
        assert status == 200, (status, data)
        self.access = json.loads(data)["content"]["access_token"]
        self.refresh = cookie_of(cookie)

    def run(self):
        i = 0
        while not self.stop.is_set():
            i += 1
            if i % 40 == 0:
                kind, args = "login", ("POST", "/auth/login", {"email": self.email, "password": PASSWORD})
            elif i % 5 == 0:
                kind, args = "refresh", ("POST", "/auth/refreshAccessToken", None, {"Cookie": f"jwt={self.refresh}"})
            else:
                kind, args = "me", ("GET", "/auth/me", None, {"Authorization": f"Bearer {self.access}"})
            started = time.time()
            try:
                status, cookie, data = self.client.call(*args)
            except Exception as e:  # a socket error or a hang past the client timeout
                self.log.append((started, time.time() - started, kind, "socket", type(e).__name__))
                continue
            self.log.append((started, time.time() - started, kind, status, code_of(data) if status != 200 else ""))
            if status == 200 and kind in ("login", "refresh"):
                body = json.loads(data)["content"]
                self.access = body["access_token"]
                self.refresh = cookie_of(cookie) or self.refresh
            time.sleep(0.002)


def summarise(name, entries, back_at):
    by = {}
    for _, _, _, status, code in entries:
        key = f"{status} {code}".strip()
        by[key] = by.get(key, 0) + 1
    slowest = max((e[1] for e in entries), default=0) * 1000
    failures_after = [e for e in entries if e[0] >= back_at and e[3] != 200]
    recovered = (max(e[0] + e[1] for e in failures_after) - back_at) if failures_after else 0.0
    print(f"| {name} | {len(entries)} | {', '.join(f'{k}: {v}' for k, v in sorted(by.items()))} | "
          f"{slowest:.0f} | {recovered:.2f} |")
    bad = [k for k in by if not (k == "200" or k == "503 SERVICE_UNAVAILABLE")]
    return bad, slowest


def main():
    root = tempfile.mkdtemp(prefix="auth-api-chaos-")
    os.chmod(root, 0o755)  # the postgres user runs the cluster inside it
    stores = Stores(root)
    server = None
    try:
        stores.start_redis()
        stores.start_pg()
        port, metrics_port = free_port(), free_port()
        env = {
            "PATH": os.environ["PATH"], "HOST_ADDR": f"127.0.0.1:{port}", "METRICS_ADDR": f"127.0.0.1:{metrics_port}",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:{stores.pg_port}/postgres",
            "REDIS_URL": f"redis://127.0.0.1:{stores.redis_port}", "LOG_FORMAT": "json",
            "ACCESS_TOKEN_SECRET": "chaos-secret-chaos-secret-chaos-secret!!", "STORE_TIMEOUT_MS": str(STORE_TIMEOUT_MS),
            "ARGON2_MEMORY_KIB": "1024", "ARGON2_ITERATIONS": "1", "MAX_SESSIONS_PER_USER": "100",
            "RATE_LIMIT_PER_SECOND": "100000000", "RATE_LIMIT_BURST": "100000000",
            "RATE_LIMIT_AUTH_PER_MINUTE": "100000000", "LOGIN_MAX_FAILURES": "100000000",
        }
        server_log = open(os.path.join(root, "server.log"), "w")
        server = subprocess.Popen([BIN], env=env, stdout=server_log, stderr=subprocess.STDOUT)
        wait_port(port)
        log, stop = [], threading.Event()
        workers = [Worker(port, n, log, stop) for n in range(WORKERS)]
        for w in workers:
            w.start()

        phases, marks = [], []

        def phase(name, seconds, action=None):
            # An outage starts when the stop begins; a recovery is timed from the moment the
            # dependency accepts connections again.
            if not name.endswith("back"):
                marks.append((name, time.time()))
            if action:
                action()
            if name.endswith("back"):
                marks.append((name, time.time()))
            time.sleep(seconds)

        phase("steady", 3)
        phase("Redis stopped", OUTAGE, stores.stop_redis)
        phase("Redis back", 3, stores.start_redis)
        phase("PostgreSQL stopped (immediate)", OUTAGE, stores.stop_pg)
        phase("PostgreSQL back", 3, stores.start_pg)
        stop.set()
        for w in workers:
            w.join()
        end = time.time()

        print(f"{WORKERS} workers (/auth/me, every 5th call a refresh, every 40th a login); "
              f"outages of {OUTAGE:.0f} s; STORE_TIMEOUT_MS={STORE_TIMEOUT_MS}")
        print()
        print("| phase | requests | answers | slowest ms | recovery s |")
        print("|---|---|---|---|---|")
        failed = []
        for i, (name, at) in enumerate(marks):
            until = marks[i + 1][1] if i + 1 < len(marks) else end
            entries = [e for e in log if at <= e[0] < until]
            back_at = at if name.endswith("back") else float("inf")
            bad, slowest = summarise(name, entries, back_at)
            if bad:
                failed.append(f"{name}: {bad}")
            if slowest > STORE_TIMEOUT_MS + MARGIN_MS:
                failed.append(f"{name}: a request took {slowest:.0f} ms")
            if name == "steady" and any(e[3] != 200 for e in entries):
                failed.append("steady: failures before any outage")

        # Nothing lost: each user logs in, and each session (its latest refresh token) refreshes.
        check = Client(port)
        lost_users = sum(
            check.call("POST", "/auth/login", {"email": w.email, "password": PASSWORD})[0] != 200 for w in workers)
        lost_sessions = sum(
            check.call("POST", "/auth/refreshAccessToken", None, {"Cookie": f"jwt={w.refresh}"})[0] != 200 for w in workers)
        print()
        print(f"after both outages: {WORKERS - lost_users}/{WORKERS} users log in, "
              f"{WORKERS - lost_sessions}/{WORKERS} sessions refresh")
        if lost_users or lost_sessions:
            failed.append("something was lost")
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=30)
        server_log.close()
        panics = [line for line in open(os.path.join(root, "server.log")) if "panic" in line.lower()]
        if code != 0 or panics:
            failed.append(f"server exit {code}, {len(panics)} panic lines")
        if failed:
            print("MISSED:", "; ".join(failed))
            seen = set()
            for line in open(os.path.join(root, "server.log")):
                if '"ERROR"' in line or '"WARN"' in line:
                    entry = json.loads(line)
                    key = (entry.get("message"), str(entry.get("error", ""))[:160])
                    if key not in seen:
                        seen.add(key)
                        print(f"  server {entry.get('level')} at {entry.get('timestamp')}: {key[0]}: {key[1]}")
            return 1
        print("behaviour: met (only 200s and 503 SERVICE_UNAVAILABLE envelopes, none slower than "
              f"{STORE_TIMEOUT_MS + MARGIN_MS} ms, nothing lost)")
        return 0
    finally:
        if server and server.poll() is None:
            server.kill()
        stores.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
