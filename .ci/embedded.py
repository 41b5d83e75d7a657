"""The release binary on the embedded stores, for the independent-library checks: a free port,
a scratch directory, the variables given, and the process stopped on leaving."""
import contextlib
import os
import socket
import subprocess
import tempfile
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(binary: str, **variables: str):
    """Yields the base URL of `binary` once it answers /health/live."""
    with tempfile.TemporaryDirectory() as work:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOST_ADDR": f"127.0.0.1:{port}",
            "SQLITE_PATH": os.path.join(work, "auth.db"),
            "METRICS_ADDR": "off",
            "LOG_FORMAT": "json",
            "RUST_LOG": "warn",
            **variables,
        }
        server = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"{base}/health/live", timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            yield base
        finally:
            server.terminate()
            server.wait(timeout=30)
