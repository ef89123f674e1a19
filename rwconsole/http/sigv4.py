"""AWS Signature Version 4 for remote-write requests (Amazon Managed Prometheus).

Owns the ``sigv4`` block: the signature itself (computed here with hashlib and
hmac, checked against AWS's published test-suite vectors), the region
(``region``, ``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile's ``region``
in the AWS config file) and signing each request with the credentials the AWS
default chain finds (``aws_chain``: keys, environment, web identity, profiles,
container and instance credentials, ``role_arn`` on top).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import httpx

from rwconsole.http.aws_chain import AWSCredentialChain
from rwconsole.http.aws_credentials import AWSCredentials
from rwconsole.http.credential_cache import Clock, CredentialStatus
from rwconsole.http.errors import AuthError
from rwconsole.http.options import opt

SERVICE = "aps"
ALGORITHM = "AWS4-HMAC-SHA256"

# Headers that are not signed: they are set or changed after signing, or by
# hops between us and AWS (HTTP/2 drops connection-level headers).
_UNSIGNED = frozenset(
    {
        "authorization",
        "user-agent",
        "expect",
        "connection",
        "keep-alive",
        "proxy-authorization",
        "te",
        "transfer-encoding",
        "upgrade",
        "accept-encoding",
        "x-amzn-trace-id",
    }
)
_UNRESERVED = "-_.~"


@dataclass(frozen=True, slots=True)
class Signature:
    canonical_request: str
    string_to_sign: str
    authorization: str


def amz_date(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def compute_signature(
    method: str,
    url: httpx.URL | str,
    headers: Iterable[tuple[str, str]],
    payload_sha256: str,
    credentials: AWSCredentials,
    region: str,
    service: str,
    date_time: str,
) -> Signature:
    """Sign a request whose ``headers`` already include ``host`` and ``x-amz-date``.

    All given headers are signed (names lower-cased, values trimmed with inner
    runs of spaces collapsed, repeated names joined with commas).
    """
    url = httpx.URL(url) if isinstance(url, str) else url
    grouped: dict[str, list[str]] = {}
    for name, value in headers:
        grouped.setdefault(name.lower(), []).append(" ".join(value.strip().split()))
    names = sorted(grouped)
    canonical_headers = "".join(f"{name}:{','.join(grouped[name])}\n" for name in names)
    signed_headers = ";".join(names)
    canonical_request = "\n".join(
        [
            method.upper(),
            _canonical_path(url),
            _canonical_query(url),
            canonical_headers,
            signed_headers,
            payload_sha256,
        ]
    )
    day = date_time[:8]
    scope = f"{day}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        [ALGORITHM, date_time, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = _signing_key(credentials.secret_key, day, region, service)
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    authorization = (
        f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    return Signature(canonical_request, string_to_sign, authorization)


def sign_request(
    request: httpx.Request,
    credentials: AWSCredentials,
    region: str,
    service: str = SERVICE,
    *,
    now: dt.datetime | None = None,
) -> Signature:
    """Add ``X-Amz-Date``, ``X-Amz-Security-Token`` and ``Authorization`` to ``request``."""
    date_time = amz_date(now or dt.datetime.now(dt.UTC))
    request.headers["X-Amz-Date"] = date_time
    if credentials.session_token:
        request.headers["X-Amz-Security-Token"] = credentials.session_token
    elif "x-amz-security-token" in request.headers:
        del request.headers["X-Amz-Security-Token"]
    signed = [(k, v) for k, v in request.headers.multi_items() if k.lower() not in _UNSIGNED]
    payload_sha256 = hashlib.sha256(request.content).hexdigest()
    signature = compute_signature(
        request.method, request.url, signed, payload_sha256, credentials, region, service, date_time
    )
    request.headers["Authorization"] = signature.authorization
    return signature


def _signing_key(secret: str, day: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _canonical_path(url: httpx.URL) -> str:
    # Non-S3 services sign the already-escaped path escaped once more.
    path = url.raw_path.split(b"?", 1)[0].decode("ascii") or "/"
    return urllib.parse.quote(path, safe="/" + _UNRESERVED)


def _canonical_query(url: httpx.URL) -> str:
    pairs = urllib.parse.parse_qsl(url.query.decode("ascii"), keep_blank_values=True)
    encoded = sorted(
        (urllib.parse.quote(k, safe=_UNRESERVED), urllib.parse.quote(v, safe=_UNRESERVED))
        for k, v in pairs
    )
    return "&".join(f"{k}={v}" for k, v in encoded)


class SigV4Signer:
    """Signs requests for one endpoint's ``sigv4`` block, resolving credentials."""

    def __init__(
        self,
        block: object,
        *,
        environ: Mapping[str, str] | None = None,
        name: str = "",
        clock: Clock = time.time,
    ) -> None:
        self._block = block
        self._environ = environ
        self._chain = AWSCredentialChain(
            block, region=self.region, sign=sign_request, environ=environ, label=name, clock=clock
        )

    def region(self) -> str:
        env = self._environ if self._environ is not None else os.environ
        region = opt(self._block, "region", "") or env.get("AWS_REGION", "")
        region = region or env.get("AWS_DEFAULT_REGION", "") or self._chain.profile_region()
        if not region:
            raise AuthError(
                "sigv4.region is not set and no region was found in AWS_REGION, "
                "AWS_DEFAULT_REGION or the AWS config file"
            )
        return region

    async def sign(self, request: httpx.Request) -> None:
        region = self.region()
        credentials = await self._chain.get()
        sign_request(request, credentials, region, SERVICE)

    def credential_status(self) -> CredentialStatus:
        return self._chain.status()

    def invalidate(self) -> None:
        self._chain.invalidate()

    async def aclose(self) -> None:
        await self._chain.aclose()


__all__ = ["AWSCredentials", "SigV4Signer", "compute_signature", "sign_request"]
