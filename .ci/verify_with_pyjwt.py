#!/usr/bin/env python3
"""Verifies access tokens with a library nobody here wrote: PyJWT's PyJWKClient fetches the
running service's JWKS, picks the key by `kid`, and checks signature, `iss`, `aud` and `typ`.

Usage: verify_with_pyjwt.py BINARY. Starts the release binary on the embedded stores once per
algorithm (EdDSA, ES256), on a free port, in a scratch directory; fails on any mismatch.
"""
import json
import sys
import urllib.request

import jwt
from embedded import running


def request(url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if body is not None else {}
    with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=10) as r:
        return json.load(r)


def check(binary: str, alg: str) -> None:
    with running(binary, ACCESS_TOKEN_ALG=alg) as base:
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


def main() -> int:
    for alg in ("EdDSA", "ES256"):
        check(sys.argv[1], alg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
