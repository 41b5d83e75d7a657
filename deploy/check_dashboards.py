#!/usr/bin/env python3
"""Tests the Grafana dashboards and the alert rules against a real Prometheus.

Starts the release binary on a fresh PostgreSQL database, a private redis-server and an SMTP
server (aiosmtpd, tests/smtp/server.py), and Debian's Prometheus scraping it every second with
our alert rules loaded. Drives a workload that
produces every outcome label of every auth_* counter (including the failures: a Redis outage and
a refused database), then evaluates, against that Prometheus:

- every variable query and every panel query of every dashboard (Grafana's variables substituted
  with their "All" value, $__rate_interval with a window covering the workload): each must be
  valid and return at least one series with a finite value;
- every recording and alerting rule: valid, healthy in Prometheus' own evaluation, and returning
  series once its thresholds are turned into `bool` comparisons (so an alert that is silent
  still proves the series it watches exist);
- every outcome label the dashboards plot: its counter moved during the workload.

Exit status 0 when all hold. Usage:
  python3 deploy/check_dashboards.py --binary target/release/auth-api [--database-url URL]
"""

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import math
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

DEPLOY = Path(__file__).resolve().parent
SECRET = "dashboard-check-secret-0123456789abcdef0123456789"
KEYS_KEY = "ZGFzaGJvYXJkLWNoZWNrLWtleXMtZW5jcnlwdGlvbiE="
PASSWORD = "correct horse battery staple"

# Every label value the dashboards break counters down by; the workload must move each one.
EXPECTED_OUTCOMES = {
    "auth_logins_total": ("outcome", ["success", "invalid_credentials", "invalid_request", "locked", "unverified", "disabled", "mfa_required", "rate_limited", "error"]),
    "auth_registrations_total": ("outcome", ["success", "email_taken", "invalid", "error"]),
    "auth_refresh_total": ("outcome", ["success", "grace_replay", "expired", "invalid", "reused", "error"]),
    "auth_sessions_revoked_total": ("reason", ["logout", "reuse", "evicted", "user", "password_change", "password_reset"]),
    "auth_token_validations_total": ("outcome", ["valid", "expired", "invalid"]),
    "auth_rate_limited_total": ("limiter", ["general", "auth"]),
    "auth_emails_total": ("outcome", ["queued", "throttled", "sent", "failed", "dead", "skipped"]),
    "auth_password_resets_total": ("outcome", ["requested", "throttled", "completed", "invalid_token", "expired_token"]),
    "auth_mfa_verifications_total": ("outcome", ["success", "invalid", "replayed"]),
    "auth_admin_actions_total": ("action", ["disable", "enable"]),
    "auth_security_events_total": ("name", [
        "user.registered", "login.succeeded", "login.failed", "login.locked", "session.revoked",
        "refresh.reuse_detected", "password.changed", "password.reset_requested", "password.reset",
        "email.verification_sent", "email.verified", "mfa.enabled", "mfa.verified", "mfa.failed",
        # signing_key.*: the first key is made at start, before the workload's first snapshot.
    ]),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


class Cuttable:
    """A TCP forwarder in front of PostgreSQL that the workload can cut, as a network partition
    would: open connections reset, new ones refused."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.conns = []
        self.lock = threading.Lock()
        self.is_cut = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            with self.lock:
                if self.is_cut:
                    # Accepted while the cut was under way (a blocked accept is not interrupted).
                    client.close()
                    return
                upstream = socket.create_connection(self.target)
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        with self.lock:
            self.is_cut = True
            try:
                # Wakes the accept blocked in the other thread (close alone would not, on Linux).
                self.server.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.server.close()
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass


class Api:
    """A tiny HTTP client for the workload. Every call comes from its own client address
    (X-Forwarded-For through a trusted proxy) unless one is given, so the per-IP auth limit only
    bites where the workload means it to."""

    def __init__(self, port: int):
        self.port = port
        self.next_ip = 0

    def call(self, method: str, path: str, body=None, token=None, cookie=None, ip=None):
        if ip is None:
            self.next_ip += 1
            ip = f"10.77.{self.next_ip // 250}.{self.next_ip % 250 + 1}"
        headers = {"X-Forwarded-For": ip, "Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if cookie is not None:
            headers["Cookie"] = f"jwt={cookie}"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        conn.close()
        new_cookie = None
        for name, value in resp.getheaders():
            if name.lower() == "set-cookie" and value.startswith("jwt="):
                new_cookie = value.split(";", 1)[0][4:]
        try:
            content = json.loads(raw).get("content")
        except ValueError:
            content = None
        return resp.status, content, new_cookie

    def expect(self, status: int, method: str, path: str, **kw):
        got = self.call(method, path, **kw)
        if got[0] != status:
            code = got[1].get("error_code") if isinstance(got[1], dict) else None
            raise SystemExit(f"workload: {method} {path} answered {got[0]} ({code}), expected {status}")
        return got

    def login(self, email: str, password: str = PASSWORD, status: int = 200, ip=None):
        return self.expect(status, "POST", "/auth/login", body={"email": email, "password": password}, ip=ip)


class Mailbox:
    """The SMTP server the API delivers to, and the links in what it received."""

    def __init__(self, port: int, out: Path):
        self.port, self.out, self.proc = port, out, None

    def start(self) -> None:
        script = DEPLOY.parent / "tests/smtp/server.py"
        self.proc = subprocess.Popen(
            [sys.executable, str(script), "--port", str(self.port), "--out", str(self.out)], stdout=subprocess.DEVNULL
        )
        wait_for("the SMTP server", lambda: socket.create_connection(("127.0.0.1", self.port), 1).close() is None)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)

    def token(self, to: str, page: str, nth: int) -> str:
        """The token of the `nth` mail to `to` linking to `page`, once it has arrived."""
        found = []

        def arrived() -> bool:
            lines = self.out.read_text().splitlines() if self.out.exists() else []
            mails = [json.loads(line) for line in lines]
            found[:] = [m for m in mails if to in m["to"] and f"/{page}?token=" in m["text"]]
            return len(found) >= nth

        wait_for(f"mail {nth} to {to} ({page})", arrived)
        return re.search(rf"/{page}\?token=([A-Za-z0-9_-]{{43}})", found[nth - 1]["text"]).group(1)


def metric(metrics_port: int, sample: str) -> float:
    body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    for line in body.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def mail_workload(api: Api, mailbox: Mailbox, metrics_port: int) -> None:
    """Reset and verification through the SMTP server: every mail and reset outcome."""
    api.login("ada@example.com")
    api.login("ada@example.com")
    api.expect(202, "POST", "/auth/password/forgot", body={"email": "ada@example.com"})  # requested, queued
    token = mailbox.token("ada@example.com", "reset-password", 1)  # sent
    api.expect(200, "POST", "/auth/password/reset", body={"token": token, "password": PASSWORD})  # completed
    api.expect(400, "POST", "/auth/password/reset", body={"token": token, "password": PASSWORD})  # invalid_token
    api.expect(202, "POST", "/auth/password/forgot", body={"email": "ada@example.com"})
    token = mailbox.token("ada@example.com", "reset-password", 2)
    time.sleep(2.5)  # PASSWORD_RESET_TTL=2
    api.expect(400, "POST", "/auth/password/reset", body={"token": token, "password": PASSWORD})  # expired_token
    # MAIL_PER_ADDRESS_PER_HOUR=4: no account behind it (skipped), then throttled.
    for _ in range(4):
        api.expect(202, "POST", "/auth/password/forgot", body={"email": "nobody@example.com"})
    api.expect(202, "POST", "/auth/password/forgot", body={"email": "nobody@example.com"})  # throttled
    # A password change ends the other session; a second one puts the password back.
    api.login("ada@example.com")
    _, content, _ = api.login("ada@example.com")
    changed = PASSWORD + " again"
    for old, new in [(PASSWORD, changed), (changed, PASSWORD)]:
        body = {"current_password": old, "new_password": new}
        api.expect(200, "POST", "/auth/password/change", body=body, token=content["access_token"])
    # The relay goes away: MAIL_MAX_ATTEMPTS=2 attempts, one retry (failed), then dead.
    mailbox.stop()
    api.expect(202, "POST", "/auth/password/forgot", body={"email": "ada@example.com"})
    dead = 'auth_emails_total{kind="password_reset",outcome="dead"}'
    wait_for("a mail marked dead", lambda: metric(metrics_port, dead) >= 1)


def totp(secret: str, at: float) -> str:
    """RFC 6238 (SHA-1, 6 digits, 30 s) from the base32 secret, with the standard library."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    mac = hmac.new(key, int(at // 30).to_bytes(8, "big"), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    return f"{(int.from_bytes(mac[offset:offset + 4], 'big') & 0x7FFFFFFF) % 1_000_000:06d}"


def mfa_workload(api: Api, mailbox: Mailbox) -> None:
    """A second factor enrolled and used: every outcome of auth_mfa_verifications_total that a
    client can cause. LOGIN_MAX_FAILURES=2, so a success sits between the two failures."""
    reg = {"username": "Mia", "email": "mia@example.com", "password": PASSWORD}
    api.expect(202, "POST", "/auth/register", body=reg)
    api.expect(200, "POST", "/auth/email/verify", body={"token": mailbox.token("mia@example.com", "verify-email", 1)})
    _, content, _ = api.login("mia@example.com")
    token = content["access_token"]
    _, enrolment, _ = api.expect(200, "POST", "/auth/mfa/totp", body={"password": PASSWORD}, token=token)
    code = totp(enrolment["secret"], time.time())
    _, confirmed, _ = api.expect(200, "POST", "/auth/mfa/totp/confirm", body={"code": code}, token=token)
    _, denied, _ = api.login("mia@example.com", status=401)  # mfa_required
    challenge = denied["mfa"]["challenge"]
    api.expect(401, "POST", "/auth/mfa/verify", body={"challenge": challenge, "code": "000000"})  # invalid
    recovery = confirmed["recovery_codes"][0]
    api.expect(200, "POST", "/auth/mfa/verify", body={"challenge": challenge, "recovery_code": recovery})  # success
    _, denied, _ = api.login("mia@example.com", status=401)
    # The confirmation's code again: within the window, but its step is used.
    api.expect(401, "POST", "/auth/mfa/verify", body={"challenge": denied["mfa"]["challenge"], "code": code})  # replayed


class Admin:
    """The admin listener, with a key the CLI made."""

    def __init__(self, port: int, key: str):
        self.port, self.key = port, key

    def expect(self, status: int, method: str, path: str):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request(method, path, headers={"Authorization": f"Bearer {self.key}"})
        resp = conn.getresponse()
        content = json.loads(resp.read()).get("content")
        conn.close()
        if resp.status != status:
            raise SystemExit(f"workload: admin {method} {path} answered {resp.status}, expected {status}")
        return content


def admin_workload(api: Api, admin: Admin) -> None:
    """An operator disables an account (its login answers `disabled`), then enables it."""
    ada = admin.expect(200, "GET", "/admin/users?email_prefix=ada")["users"][0]["id"]
    admin.expect(200, "POST", f"/admin/users/{ada}/disable")
    api.login("ada@example.com", status=403)  # disabled
    admin.expect(200, "POST", f"/admin/users/{ada}/enable")
    api.login("ada@example.com")


def workload(
    api: Api, admin: Admin, redis: subprocess.Popen, db_link: Cuttable, mailbox: Mailbox, metrics_port: int
) -> None:
    """Every outcome the dashboards show, in an order where each step's precondition holds."""
    reg = {"username": "Ada", "email": "ada@example.com", "password": PASSWORD}
    # REQUIRE_VERIFIED_EMAIL=true: no session until the mailed link is followed.
    api.expect(202, "POST", "/auth/register", body=reg)
    api.login("ada@example.com", status=403)  # unverified
    token = mailbox.token("ada@example.com", "verify-email", 1)
    api.expect(200, "POST", "/auth/email/verify", body={"token": token})
    api.expect(409, "POST", "/auth/register", body=reg)  # email_taken
    api.expect(400, "POST", "/auth/register", body={**reg, "email": "not-an-email"})  # invalid
    api.expect(404, "GET", "/no/such/route")  # the UNMATCHED endpoint
    api.expect(400, "POST", "/auth/login", body={"email": "not-an-email", "password": "x"})  # invalid_request

    _, content, first = api.login("ada@example.com")
    token = content["access_token"]
    api.expect(200, "GET", "/auth/me", token=token)  # valid
    api.expect(401, "GET", "/auth/me", token="not.a.jwt")  # invalid
    _, _, second = api.expect(200, "POST", "/auth/refreshAccessToken", cookie=first)  # success
    api.expect(200, "POST", "/auth/refreshAccessToken", cookie=first)  # grace_replay
    api.expect(401, "POST", "/auth/refreshAccessToken", cookie="forged-token")  # invalid
    time.sleep(2.5)  # past REFRESH_REUSE_GRACE
    api.expect(401, "POST", "/auth/refreshAccessToken", cookie=first)  # reused; family revoked

    # MAX_SESSIONS_PER_USER=2: a third login evicts the oldest session.
    api.login("ada@example.com")
    api.login("ada@example.com")
    _, content, current = api.login("ada@example.com")
    token = content["access_token"]
    _, sessions, _ = api.expect(200, "GET", "/auth/sessions", token=token)
    other = next(s["id"] for s in sessions if not s["current"])
    api.expect(200, "DELETE", f"/auth/sessions/{other}", token=token)  # revoked by the user
    api.expect(200, "POST", "/auth/logout", cookie=current)  # logout

    mfa_workload(api, mailbox)
    mail_workload(api, mailbox, metrics_port)
    admin_workload(api, admin)

    # LOGIN_MAX_FAILURES=2: two wrong passwords, then the email is locked.
    api.login("eve@example.com", "wrong password", 401)
    api.login("eve@example.com", "wrong password", 401)
    api.login("eve@example.com", "wrong password", 429)

    # RATE_LIMIT_AUTH_PER_MINUTE=5 from one address, then the general limit from another.
    for i in range(5):
        api.login(f"nobody{i}@example.com", "wrong password", 401, ip="10.99.0.1")
    api.login("nobody@example.com", "wrong password", 429, ip="10.99.0.1")
    statuses = {api.call("GET", "/auth/me", ip="10.99.0.2")[0] for _ in range(120)}
    if 429 not in statuses:
        raise SystemExit(f"workload: the general rate limit never answered 429 ({statuses})")

    # Expiry: ACCESS_TOKEN_TTL=3 and REFRESH_TOKEN_TTL=4, no leeway.
    _, content, cookie = api.login("ada@example.com")
    time.sleep(4.5)
    api.expect(401, "GET", "/auth/me", token=content["access_token"])  # expired access token
    api.expect(401, "POST", "/auth/refreshAccessToken", cookie=cookie)  # expired refresh token

    # Outage 1: the session store goes away. Logins and refreshes fail with 503; readiness too.
    _, _, cookie = api.login("ada@example.com")
    redis.terminate()
    redis.wait(10)
    api.login("ada@example.com", status=503)  # login error
    api.expect(503, "POST", "/auth/refreshAccessToken", cookie=cookie)  # refresh error
    for _ in range(3):
        api.expect(503, "GET", "/health/ready")

    # Outage 2: the network to PostgreSQL is cut; registration fails.
    db_link.cut()
    api.expect(503, "POST", "/auth/register", body={**reg, "email": "grace@example.com"})  # error


def spawn_logged(argv: list, log: Path, env=None) -> subprocess.Popen:
    """`argv` running with its stdout and stderr in `log`."""
    with open(log, "w") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)


def prometheus(binary: str, work: Path, port: int) -> subprocess.Popen:
    """Prometheus on `port` with `work/prometheus.yml`, its data and log in `work`."""
    argv = [
        binary,
        f"--config.file={work / 'prometheus.yml'}",
        f"--storage.tsdb.path={work / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    return spawn_logged(argv, work / "prometheus.log")


def stop_all(procs: list) -> None:
    """Terminates the processes still running, newest first; kills those that linger."""
    for p in reversed(procs):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def psql(url: str, sql: str) -> str:
    return subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-Atqc", sql], check=True, capture_output=True, text=True).stdout


class Prometheus:
    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params):
        url = f"{self.base}{path}?{urllib.parse.urlencode(params, doseq=True)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            return json.load(e)

    def query(self, expr: str, at: float):
        return self.get("/api/v1/query", query=expr, time=f"{at:.3f}")


def finite_series(result) -> int:
    data = result.get("data", {})
    if data.get("resultType") == "scalar":
        return 1 if math.isfinite(float(data["result"][1])) else 0
    return sum(1 for s in data.get("result", []) if math.isfinite(float(s["value"][1])))


def bool_thresholds(expr: str) -> str:
    """`x > 0.05` filters series away; `x > bool 0.05` keeps each one as 0 or 1."""
    return re.sub(r"(?<![=!<>~])(>=|<=|==|!=|>|<)\s*(?=[(\d])", r"\1 bool ", expr)


def check(prom: Prometheus, at: float, window: str) -> list:
    failures = []

    def expect_series(what: str, expr: str, result) -> None:
        if result.get("status") != "success":
            failures.append(f"{what}: invalid: {result.get('error')}\n    {expr}")
        elif finite_series(result) == 0:
            failures.append(f"{what}: no series with a value\n    {expr}")
        else:
            print(f"ok  {what} ({finite_series(result)} series)")

    for path in sorted((DEPLOY / "grafana/dashboards").glob("*.json")):
        dash = json.loads(path.read_text())
        values = {"$__rate_interval": window}
        for var in dash["templating"]["list"]:
            if var["type"] == "query":
                query = var["query"]["query"]
                m = re.fullmatch(r"label_values\((.*), (\w+)\)", query)
                selector = m.group(1)
                for name, value in values.items():
                    selector = selector.replace(name, value)
                got = prom.get("/api/v1/series", **{"match[]": selector})
                found = {s.get(m.group(2)) for s in got.get("data", [])} - {None}
                if not found:
                    failures.append(f"{dash['title']} / variable {var['name']}: no values for {query}")
                else:
                    print(f"ok  {dash['title']} / variable {var['name']}: {sorted(found)}")
                values["$" + var["name"]] = var["allValue"]
        for panel in dash["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for name, value in sorted(values.items(), key=lambda kv: -len(kv[0])):
                    expr = expr.replace(name, value)
                expect_series(f"{dash['title']} / {panel['title']} / {target['refId']}", expr, prom.query(expr, at))

    rules = yaml.safe_load((DEPLOY / "prometheus/rules/auth-api.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule["record"]
            expr = bool_thresholds(rule["expr"]) if "alert" in rule else rule["expr"]
            expect_series(f"rule {name}", expr, prom.query(expr, at))

    loaded = prom.get("/api/v1/rules")["data"]["groups"]
    states = {}
    for group in loaded:
        for rule in group["rules"]:
            if rule["health"] != "ok":
                failures.append(f"rule {rule['name']}: Prometheus reports {rule['health']}: {rule.get('lastError')}")
            if rule["type"] == "alerting":
                states[rule["name"]] = rule["state"]
    print("alert states after the workload:", json.dumps(states))
    rule_count = sum(len(g["rules"]) for g in rules["groups"])
    if sum(len(g["rules"]) for g in loaded) != rule_count:
        failures.append(f"Prometheus loaded {sum(len(g['rules']) for g in loaded)} rules, the file has {rule_count}")

    for metric, (label, outcomes) in EXPECTED_OUTCOMES.items():
        for outcome in outcomes:
            expr = f'sum(increase({metric}{{{label}="{outcome}"}}[{window}]))'
            result = prom.query(expr, at)
            moved = [float(s["value"][1]) for s in result["data"]["result"]]
            if not moved or moved[0] <= 0:
                failures.append(f"workload: {metric}{{{label}=\"{outcome}\"}} did not move")
            else:
                print(f"ok  {metric}{{{label}=\"{outcome}\"}} moved by {moved[0]:.1f}")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True, help="the auth-api release binary")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--prometheus", default=shutil.which("prometheus") or "/usr/bin/prometheus")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="auth-api-dashboards-"))
    database = f"auth_dashboards_{os.getpid()}"
    procs = []
    api_port, metrics_port, redis_port, prom_port, smtp_port, admin_port = (free_port() for _ in range(6))
    try:
        redis = subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        procs.append(redis)
        mailbox = Mailbox(smtp_port, work / "mails.jsonl")
        mailbox.start()
        procs.append(mailbox.proc)
        psql(args.database_url, f'CREATE DATABASE "{database}"')
        admin = urllib.parse.urlsplit(args.database_url)
        db_link = Cuttable(admin.hostname or "127.0.0.1", admin.port or 5432)
        netloc = (f"{admin.username}@" if admin.username else "") + f"127.0.0.1:{db_link.port}"
        db_url = admin._replace(netloc=netloc, path="/" + database).geturl()
        env = {
            **os.environ,
            "HOST_ADDR": f"127.0.0.1:{api_port}",
            "METRICS_ADDR": f"127.0.0.1:{metrics_port}",
            "ADMIN_ADDR": f"127.0.0.1:{admin_port}",
            "DATABASE_URL": db_url,
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}",
            "KEYS_ENCRYPTION_KEY": KEYS_KEY,
            "ACCESS_TOKEN_TTL": "3",
            "REFRESH_TOKEN_TTL": "4",
            "REFRESH_REUSE_GRACE": "2",
            "JWT_LEEWAY": "0",
            "MAX_SESSIONS_PER_USER": "2",
            "LOGIN_MAX_FAILURES": "2",
            "RATE_LIMIT_AUTH_PER_MINUTE": "5",
            "TRUSTED_PROXIES": "127.0.0.1/32",
            "STORE_TIMEOUT_MS": "500",
            "COOKIE_SECURE": "false",
            "SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
            "REQUIRE_VERIFIED_EMAIL": "true",
            "PASSWORD_RESET_TTL": "2",
            "MAIL_PER_ADDRESS_PER_HOUR": "4",
            "MAIL_MAX_ATTEMPTS": "2",
            "MAIL_RETRY_MAX": "1",
            "LOG_FORMAT": "json",
            "RUST_LOG": "warn",
        }
        for key in ("OTEL_EXPORTER_OTLP_ENDPOINT", "SQLITE_PATH", "CORS_ALLOWED_ORIGINS"):
            env.pop(key, None)
        procs.append(spawn_logged([args.binary, "serve"], work / "auth-api.log", env))

        # The same rules, evaluated every second (the SLI group's 30 s interval would outlast the run).
        rules = yaml.safe_load((DEPLOY / "prometheus/rules/auth-api.yml").read_text())
        for group in rules["groups"]:
            group.pop("interval", None)
        (work / "rules.yml").write_text(yaml.safe_dump(rules))
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(work / "rules.yml")],
            "scrape_configs": [
                {
                    "job_name": "auth-api",
                    "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"], "labels": {"namespace": "ci"}}],
                }
            ],
        }
        (work / "prometheus.yml").write_text(yaml.safe_dump(config))
        procs.append(prometheus(args.prometheus, work, prom_port))
        prom = Prometheus(prom_port)
        api = Api(api_port)
        wait_for("auth-api readiness", lambda: api.call("GET", "/health/ready")[0] == 200)
        wait_for("Prometheus", lambda: urllib.request.urlopen(f"{prom.base}/-/ready", timeout=2).status == 200)
        wait_for(
            "the first scrape",
            lambda: finite_series(prom.query('up{job="auth-api"} == 1', time.time())) == 1,
        )

        started = time.time()
        key = subprocess.run(
            [args.binary, "admin-keys", "create", "dashboards"], env=env, check=True, capture_output=True, text=True
        ).stdout.strip()
        workload(api, Admin(admin_port, key), redis, db_link, mailbox, metrics_port)
        time.sleep(4)  # a few more scrapes and rule evaluations after the last request
        at = time.time()
        window = f"{int(at - started) + 10}s"
        print(f"workload done in {at - started:.1f}s; evaluating with window {window}")
        failures = check(prom, at, window)
    finally:
        stop_all(procs)
        try:
            psql(args.database_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        except subprocess.CalledProcessError as e:
            print("could not drop", database, e.stderr, file=sys.stderr)

    if failures:
        print("\nFAILED:", *failures, sep="\n  ", file=sys.stderr)
        print(f"logs kept in {work}", file=sys.stderr)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    print("\nall dashboard queries and rules returned data")
    return 0


if __name__ == "__main__":
    sys.exit(main())
