"""Login with an unknown email vs. with a wrong password: do they take the same time?

Starts the release binary with the production argon2 cost, registers one user, then sends
N login attempts of each kind, interleaved (so drift and noise hit both alike), over one
keep-alive connection, and prints the latency statistics of each and Welch's t.
Usage: python3 bench/login_timing.py [N]   (run from the repository root after
`cargo build --release`; CARGO_TARGET_DIR is honoured).
"""
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 300
PORT = 3902
BIN = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "auth-api")


def post(conn, path, body):
    started = time.perf_counter()
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    payload = response.read()
    return time.perf_counter() - started, response.status, payload


def describe(name, samples):
    ms = [s * 1000 for s in samples]
    q = statistics.quantiles(ms, n=20)
    print(f"{name:>15}: median {statistics.median(ms):6.2f} ms  mean {statistics.mean(ms):6.2f}  "
          f"stdev {statistics.stdev(ms):5.2f}  p5 {q[0]:6.2f}  p95 {q[-1]:6.2f}  (n={len(ms)})")


def main():
    workdir = tempfile.mkdtemp()
    env = {
        "PATH": os.environ["PATH"],
        "HOST_ADDR": f"127.0.0.1:{PORT}",
        "METRICS_ADDR": "off",
        "SQLITE_PATH": os.path.join(workdir, "auth.db"),
        "RUST_LOG": "error",
        "RATE_LIMIT_AUTH_PER_MINUTE": "10000000",
        "RATE_LIMIT_PER_SECOND": "10000000",
        "RATE_LIMIT_BURST": "10000000",
        "LOGIN_MAX_FAILURES": "10000000",
    }
    server = subprocess.Popen([BIN], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", PORT)
                conn.request("GET", "/health/live")
                conn.getresponse().read()
                break
            except OSError:
                time.sleep(0.1)
        post(conn, "/auth/register", {"username": "t", "email": "known@example.com", "password": "the real password"})
        wrong, unknown = [], []
        for i in range(N + 10):
            a = post(conn, "/auth/login", {"email": "known@example.com", "password": "a wrong password"})
            b = post(conn, "/auth/login", {"email": f"unknown{i}@example.com", "password": "a wrong password"})
            assert a[1] == b[1] == 401 and a[2] == b[2], "both must answer the same 401"
            if i >= 10:  # warm-up
                wrong.append(a[0])
                unknown.append(b[0])
        describe("wrong password", wrong)
        describe("unknown email", unknown)
        diff = statistics.mean(wrong) - statistics.mean(unknown)
        se = (statistics.variance(wrong) / len(wrong) + statistics.variance(unknown) / len(unknown)) ** 0.5
        print(f"difference of means: {diff * 1000:+.3f} ms (Welch t = {diff / se:+.2f}; |t| < 2 means within noise)")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
