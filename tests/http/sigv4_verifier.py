"""A SigV4 signature verifier written from AWS's description of the algorithm.

It recomputes the signature of a request as received by a test server, so the
client's signing is checked independently of ``rwconsole.http.sigv4``.
"""

from __future__ import annotations

import hashlib
import hmac

from http_helpers import Request


def verify_sigv4(request: Request, secret_key: str) -> dict[str, str]:
    """Check a received request's SigV4 signature independently; return its parts."""
    auth = request.header("Authorization") or ""
    algorithm, _, rest = auth.partition(" ")
    assert algorithm == "AWS4-HMAC-SHA256"
    parts = dict(p.strip().split("=", 1) for p in rest.split(","))
    access_key, day, region, service, terminator = parts["Credential"].split("/")
    assert terminator == "aws4_request"
    names = parts["SignedHeaders"].split(";")
    received: dict[str, list[str]] = {}
    for key, value in request.headers:
        received.setdefault(key.lower(), []).append(value)
    canonical_headers = "".join(f"{n}:{','.join(received[n])}\n" for n in names)
    path, _, query = request.target.partition("?")
    canonical = "\n".join(
        [
            request.method,
            path,
            query,
            canonical_headers,
            parts["SignedHeaders"],
            hashlib.sha256(request.body).hexdigest(),
        ]
    )
    date_time = request.header("X-Amz-Date") or ""
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = (
        f"AWS4-HMAC-SHA256\n{date_time}\n{scope}\n" + hashlib.sha256(canonical.encode()).hexdigest()
    )
    key = ("AWS4" + secret_key).encode()
    for piece in (day, region, service, "aws4_request"):
        key = hmac.new(key, piece.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    assert parts["Signature"] == expected
    return {"access_key": access_key, "region": region, "service": service, "signed": names}  # type: ignore[dict-item]
