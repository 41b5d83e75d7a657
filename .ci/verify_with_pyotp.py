#!/usr/bin/env python3
"""Signs in with a second factor computed by a library nobody here wrote: pyotp reads the
`otpauth://` URI the running release binary hands out, computes the codes that confirm the
factor and answer the login challenge, and PyJWT checks `amr` and `acr` in the resulting token
against the JWKS.

Usage: verify_with_pyotp.py BINARY. Starts the binary on the embedded stores on a free port, in
a scratch directory; fails on any mismatch.
"""
import json
import sys
import time
import urllib.error
import urllib.request

from importlib.metadata import version

import jwt
import pyotp
from embedded import running

PASSWORD = "correct horse battery"


def call(url: str, body: dict | None = None, bearer: str | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def next_step(totp: pyotp.TOTP) -> None:
    """Waits for a fresh 30-second step: each step's code is accepted once."""
    time.sleep(totp.interval - time.time() % totp.interval + 0.5)


def main(binary: str) -> None:
    with running(binary, MFA_ISSUER="Example App") as base:
        email = "pyotp@example.com"
        status, answer = call(f"{base}/auth/register", {"username": "pyotp", "email": email, "password": PASSWORD})
        assert status == 200, answer
        access = answer["content"]["access_token"]
        status, enrolment = call(f"{base}/auth/mfa/totp", {"password": PASSWORD}, access)
        assert status == 200, enrolment
        totp = pyotp.parse_uri(enrolment["content"]["otpauth_uri"])
        assert isinstance(totp, pyotp.TOTP) and totp.digits == 6 and totp.interval == 30, totp
        assert totp.issuer == "Example App" and totp.name == email, (totp.issuer, totp.name)
        assert totp.secret == enrolment["content"]["secret"], "the URI and the manual secret differ"
        first_code = totp.now()
        status, confirmed = call(f"{base}/auth/mfa/totp/confirm", {"code": first_code}, access)
        assert status == 200 and len(confirmed["content"]["recovery_codes"]) == 10, confirmed

        # The login stops at the password: no token, a challenge.
        status, login = call(f"{base}/auth/login", {"email": email, "password": PASSWORD})
        assert status == 401 and login["content"]["error_code"] == "MFA_REQUIRED", login
        assert "access_token" not in login["content"], login
        challenge = login["content"]["mfa"]["challenge"]
        # The code just used to confirm is refused; the next step's is accepted.
        status, reused = call(f"{base}/auth/mfa/verify", {"challenge": challenge, "code": first_code})
        assert status == 401 and reused["content"]["error_code"] == "MFA_CODE_INVALID", reused
        next_step(totp)
        status, signed_in = call(f"{base}/auth/mfa/verify", {"challenge": challenge, "code": totp.now()})
        assert status == 200, signed_in
        token = signed_in["content"]["access_token"]
        key = jwt.PyJWKClient(f"{base}/.well-known/jwks.json").get_signing_key_from_jwt(token)
        claims = jwt.decode(token, key.key, algorithms=["EdDSA"], audience="auth-api", issuer="auth-api")
        assert claims["amr"] == ["pwd", "otp"] and claims["acr"] == "aal2", claims
        print(f"pyotp {version('pyotp')} signed in through /auth/mfa/verify; PyJWT read amr {claims['amr']}, acr {claims['acr']}")


if __name__ == "__main__":
    main(sys.argv[1])
