#!/usr/bin/env python3
"""Verifies access tokens with a library nobody here wrote: PyJWT's PyJWKClient fetches the
running service's JWKS, picks the key by `kid`, and checks signature, `iss`, `aud` and `typ`.

Usage: verify_with_pyjwt.py BINARY. Starts the release binary on the embedded stores once per
algorithm (EdDSA, ES256), on a free port, in a scratch directory; fails on any mismatch.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import jwt


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if body is not None else {}
    with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=10) as r:
        return json.load(r)


def check(binary: str, alg: str) -> None:
    with tempfile.TemporaryDirectory() as work:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOST_ADDR": f"127.0.0.1:{port}",
            "SQLITE_PATH": os.path.join(work, "auth.db"),
            "METRICS_ADDR": "off",
            "ACCESS_TOKEN_ALG": alg,
            "LOG_FORMAT": "json",
            "RUST_LOG": "warn",
        }
        server = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    request(f"{base}/health/live")
                    break
                except OSError:
                    time.sleep(0.1)
            answer = request(
                f"{base}/auth/register",
                {"username": "pyjwt", "email": f"pyjwt-{alg.lower()}@example.com", "password": "correct horse battery"},
            )
            token = answer["content"]["access_token"]
            header = jwt.get_unverified_header(token)
            assert header["alg"] == alg and header["typ"] == "at+jwt" and header["kid"], header
            key = jwt.PyJWKClient(f"{base}/.well-known/jwks.json").get_signing_key_from_jwt(token)
            claims = jwt.decode(token, key.key, algorithms=[alg], audience="auth-api", issuer="auth-api")
            assert claims["sub"] == answer["content"]["user"]["id"], claims
            # RFC 8176 and the assurance level: a password sign-in is aal1.
            assert claims["amr"] == ["pwd"] and claims["acr"] == "aal1", claims
            # A token changed after signing must not verify.
            head, payload, signature = token.split(".")
            tampered = f"{head}.{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{signature}"
            try:
                jwt.decode(tampered, key.key, algorithms=[alg], audience="auth-api", issuer="auth-api")
            except jwt.InvalidTokenError:
                pass
            else:
                raise AssertionError("a tampered token verified")
            print(f"PyJWT {jwt.__version__} verified an {alg} token (kid {header['kid']}) from the JWKS")
        finally:
            server.terminate()
            server.wait(timeout=30)


def main() -> int:
    for alg in ("EdDSA", "ES256"):
        check(sys.argv[1], alg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
