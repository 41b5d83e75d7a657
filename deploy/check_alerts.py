#!/usr/bin/env python3
"""Proves that alerts fire, end to end: service -> Prometheus -> Alertmanager -> a receiver.

Starts the release binary on a fresh PostgreSQL database and a private redis-server, Debian's
Prometheus scraping it every second with the real rule file, and Debian's Alertmanager sending
to a webhook receiver in this process. The rule file is transformed, not copied: every duration
in it (`for:` and every range selector) is divided by SCALE, so that a 2-minute window takes 6
seconds. A prober asks /health/ready twice a second (as a kubelet does) and a client calls
/auth/me twenty times a second.

Then Redis is stopped: AuthApiDependencyDown (readiness answering 503), AuthApiHigh5xxRatio
(the API's 503s) and AuthApiRedisNodeDown (the node probe at each scrape) must reach the receiver
as firing; Redis is started again: all three must reach it as resolved. Exit status 0 when all
six notifications arrived. Usage:
  python3 deploy/check_alerts.py --binary target/release/auth-api [--database-url URL]
"""

import argparse
import http.client
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from check_dashboards import KEYS_KEY, PASSWORD, free_port, prometheus, psql, spawn_logged, stop_all, wait_for

DEPLOY = Path(__file__).resolve().parent
# One minute of the rules lasts three seconds here.
SCALE = 20
EXPECTED = ("AuthApiDependencyDown", "AuthApiHigh5xxRatio", "AuthApiRedisNodeDown")
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def seconds(duration: str) -> float:
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w)", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise SystemExit(f"not a Prometheus duration: {duration}")
    return sum(int(n) * UNITS[u] for n, u in parts)


def scaled(duration: str) -> str:
    """`duration` divided by SCALE, in whole seconds, at least 1 s (the scrape interval)."""
    return f"{max(1, round(seconds(duration) / SCALE))}s"


def scale_rules(rules: dict) -> dict:
    """The rule file with every `for:` and every range selector (`[5m]`, `[1h:5m]`) scaled."""
    selector = re.compile(r"\[(\w+)(?::(\w+))?\]")

    def ranges(expr: str) -> str:
        return selector.sub(
            lambda m: f"[{scaled(m.group(1))}" + (f":{scaled(m.group(2))}" if m.group(2) else "") + "]", expr
        )

    for group in rules["groups"]:
        group.pop("interval", None)
        for rule in group["rules"]:
            rule["expr"] = ranges(rule["expr"])
            if "for" in rule:
                rule["for"] = scaled(rule["for"])
    return rules


class Receiver(http.server.BaseHTTPRequestHandler):
    """Alertmanager's webhook: records (time, alertname, status) of every alert it is sent."""

    seen: list = []
    lock = threading.Lock()

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.lock:
            for alert in body["alerts"]:
                self.seen.append((time.monotonic(), alert["labels"]["alertname"], alert["status"]))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def first(name: str, status: str):
    with Receiver.lock:
        return next((at for at, n, s in Receiver.seen if n == name and s == status), None)


class Traffic:
    """The kubelet's readiness probe and a client's /auth/me calls, counted by status."""

    def __init__(self, port: int, token: str):
        self.port, self.token, self.stop = port, token, threading.Event()
        self.statuses: dict = {}
        self.threads = [
            threading.Thread(target=self.loop, args=("/health/ready", None, 0.5), daemon=True),
            threading.Thread(target=self.loop, args=("/auth/me", token, 0.05), daemon=True),
        ]

    def loop(self, path: str, token, every: float):
        while not self.stop.is_set():
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", path, headers=headers)
                status = conn.getresponse().status
                conn.close()
            except OSError:
                status = "no answer"
            key = (path, status)
            self.statuses[key] = self.statuses.get(key, 0) + 1
            time.sleep(every)

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(10)


def redis_server(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    wait_for("redis", lambda: socket.create_connection(("127.0.0.1", port), 1).close() is None)
    return proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--prometheus", default=shutil.which("prometheus") or "/usr/bin/prometheus")
    parser.add_argument(
        "--alertmanager", default=shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="auth-api-alerts-"))
    database = f"auth_alerts_{os.getpid()}"
    api_port, metrics_port, redis_port, prom_port, am_port, hook_port = (free_port() for _ in range(6))
    procs = []
    hook = http.server.ThreadingHTTPServer(("127.0.0.1", hook_port), Receiver)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    failures = []
    try:
        redis = redis_server(redis_port)
        procs.append(redis)
        psql(args.database_url, f'CREATE DATABASE "{database}"')
        db_url = urllib.parse.urlsplit(args.database_url)._replace(path="/" + database).geturl()
        env = {
            "PATH": "/usr/bin:/bin",
            "HOST_ADDR": f"127.0.0.1:{api_port}",
            "METRICS_ADDR": f"127.0.0.1:{metrics_port}",
            "DATABASE_URL": db_url,
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}",
            "KEYS_ENCRYPTION_KEY": KEYS_KEY,
            "STORE_TIMEOUT_MS": "500",
            # Every /auth/me asks Redis: an outage shows at once.
            "SESSION_CACHE_MS": "0",
            "RATE_LIMIT_PER_SECOND": "100000",
            "RATE_LIMIT_BURST": "100000",
            "LOG_FORMAT": "json",
            "RUST_LOG": "warn",
        }
        procs.append(spawn_logged([args.binary, "serve"], work / "auth-api.log", env))

        rules = scale_rules(yaml.safe_load((DEPLOY / "prometheus/rules/auth-api.yml").read_text()))
        (work / "rules.yml").write_text(yaml.safe_dump(rules))
        (work / "prometheus.yml").write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(work / "rules.yml")],
                    "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
                    "scrape_configs": [
                        {
                            "job_name": "auth-api",
                            "static_configs": [
                                {"targets": [f"127.0.0.1:{metrics_port}"], "labels": {"namespace": "ci"}}
                            ],
                        }
                    ],
                }
            )
        )
        (work / "alertmanager.yml").write_text(
            yaml.safe_dump(
                {
                    "route": {
                        "receiver": "hook",
                        "group_by": ["alertname", "instance"],
                        "group_wait": "1s",
                        "group_interval": "1s",
                        "repeat_interval": "1h",
                    },
                    "receivers": [
                        {"name": "hook", "webhook_configs": [{"url": f"http://127.0.0.1:{hook_port}/", "send_resolved": True}]}
                    ],
                }
            )
        )
        alertmanager = [
            args.alertmanager,
            f"--config.file={work / 'alertmanager.yml'}",
            f"--storage.path={work / 'am'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
        ]
        procs.append(spawn_logged(alertmanager, work / "alertmanager.log"))
        procs.append(prometheus(args.prometheus, work, prom_port))
        base = f"http://127.0.0.1:{api_port}"
        wait_for("auth-api readiness", lambda: urllib.request.urlopen(f"{base}/health/ready", timeout=2).status == 200)
        wait_for("Alertmanager", lambda: urllib.request.urlopen(f"http://127.0.0.1:{am_port}/-/ready", timeout=2).status == 200)
        wait_for("Prometheus", lambda: urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/-/ready", timeout=2).status == 200)
        body = json.dumps({"username": "Ada", "email": "ada@example.com", "password": PASSWORD}).encode()
        request = urllib.request.Request(f"{base}/auth/register", body, {"Content-Type": "application/json"})
        token = json.load(urllib.request.urlopen(request, timeout=10))["content"]["access_token"]

        traffic = Traffic(api_port, token)
        traffic.start()
        time.sleep(20)  # a healthy stretch longer than the longest scaled window that matters (15 s)
        quiet = [name for name in EXPECTED if first(name, "firing")]
        if quiet:
            failures.append(f"fired while healthy: {quiet}")

        redis.terminate()
        redis.wait(10)
        stopped = time.monotonic()
        print(f"Redis stopped; waiting for {', '.join(EXPECTED)} to reach the receiver")
        wait_for("the alerts to fire", lambda: all(first(n, "firing") for n in EXPECTED), timeout=120)

        redis = redis_server(redis_port)
        procs.append(redis)
        back = time.monotonic()
        print("Redis started again; waiting for the alerts to resolve")
        wait_for("the alerts to resolve", lambda: all(first(n, "resolved") for n in EXPECTED), timeout=180)
        traffic.finish()

        print("\n| alert | fired after Redis stopped (s) | resolved after Redis returned (s) |")
        print("|---|---|---|")
        for name in EXPECTED:
            print(f"| {name} | {first(name, 'firing') - stopped:.1f} | {first(name, 'resolved') - back:.1f} |")
        print(f"\nrules scaled 1/{SCALE} (for: 2m -> {scaled('2m')}, 5m -> {scaled('5m')}); traffic:", end=" ")
        print(", ".join(f"{p} {s}: {n}" for (p, s), n in sorted(traffic.statuses.items(), key=str)))
    except SystemExit as e:
        failures.append(str(e))
    finally:
        hook.shutdown()
        stop_all(procs)
        try:
            psql(args.database_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        except subprocess.CalledProcessError:
            pass
    if failures:
        for line in failures:
            print("FAIL:", line, file=sys.stderr)
        with Receiver.lock:
            print("received:", Receiver.seen, file=sys.stderr)
        for name in ("auth-api.log", "alertmanager.log", "prometheus.log"):
            print(f"--- {name} (last lines)", file=sys.stderr)
            print("\n".join((work / name).read_text().splitlines()[-15:]), file=sys.stderr)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    print("ok  alerts fire and resolve through Alertmanager")
    return 0


if __name__ == "__main__":
    sys.exit(main())
