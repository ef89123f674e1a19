"""AWS Signature Version 4 for remote-write requests (Amazon Managed Prometheus).

Owns the ``sigv4`` block: the signature itself (computed here with hashlib and
hmac, checked against AWS's published test-suite vectors), the credentials
(``access_key``/``secret_key``, a named ``profile`` in the shared credentials
file, the ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``
environment variables, and ``role_arn`` through an STS ``AssumeRole`` request
we build and sign ourselves), and the region (``region``, ``AWS_REGION``,
``AWS_DEFAULT_REGION``, the profile's ``region`` in the AWS config file).

The STS endpoint is ``https://sts.<region>.amazonaws.com/`` unless the AWS
SDK's ``AWS_ENDPOINT_URL_STS`` (or ``AWS_ENDPOINT_URL``) says otherwise.
Instance-metadata and container credentials are not supported.
"""

from __future__ import annotations

import configparser
import datetime as dt
import hashlib
import hmac
import os
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import httpx

from rwconsole.config.secrets import redact_url
from rwconsole.http.errors import AuthError, describe_exc
from rwconsole.http.options import opt, reveal
from rwconsole.http.tokens import now_monotonic, token_refresh_at

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
class AWSCredentials:
    access_key: str
    secret_key: str
    session_token: str = ""
    refresh_at: float | None = None  # monotonic; None = does not expire

    def __repr__(self) -> str:
        return f"AWSCredentials(access_key={self.access_key!r}, secret_key=<secret>)"


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

    def __init__(self, block: object, *, environ: Mapping[str, str] | None = None) -> None:
        self._block = block
        self._environ = environ
        self._assumed: AWSCredentials | None = None
        self._sts_client: httpx.AsyncClient | None = None

    @property
    def _env(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    def region(self) -> str:
        region = opt(self._block, "region", "") or self._env.get("AWS_REGION", "")
        region = region or self._env.get("AWS_DEFAULT_REGION", "")
        if not region:
            region = _profile_setting(self._config_file(), self._profile_name(), "region", True)
        if not region:
            raise AuthError(
                "sigv4.region is not set and no region was found in AWS_REGION, "
                "AWS_DEFAULT_REGION or the AWS config file"
            )
        return region

    async def sign(self, request: httpx.Request) -> None:
        region = self.region()
        credentials = await self.credentials(region)
        sign_request(request, credentials, region, SERVICE)

    async def credentials(self, region: str) -> AWSCredentials:
        role_arn = opt(self._block, "role_arn", "")
        if not role_arn:
            return self._base_credentials()
        cached = self._assumed
        if cached is not None and (
            cached.refresh_at is None or now_monotonic() < cached.refresh_at
        ):
            return cached
        self._assumed = await self._assume_role(role_arn, self._base_credentials(), region)
        return self._assumed

    def _profile_name(self) -> str:
        return opt(self._block, "profile", "") or self._env.get("AWS_PROFILE", "") or "default"

    def _credentials_file(self) -> str:
        return self._env.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.expanduser(
            "~/.aws/credentials"
        )

    def _config_file(self) -> str:
        return self._env.get("AWS_CONFIG_FILE") or os.path.expanduser("~/.aws/config")

    def _base_credentials(self) -> AWSCredentials:
        access_key = opt(self._block, "access_key", "")
        secret_key = reveal(opt(self._block, "secret_key")) or ""
        if access_key or secret_key:
            if not (access_key and secret_key):
                missing = "sigv4.secret_key" if access_key else "sigv4.access_key"
                raise AuthError(
                    f"{missing} is not set (sigv4 needs both access_key and secret_key)"
                )
            return AWSCredentials(access_key, secret_key)
        explicit_profile = bool(opt(self._block, "profile", ""))
        if explicit_profile:
            found = self._profile_credentials()
            if found is not None:
                return found
        env_key = self._env.get("AWS_ACCESS_KEY_ID", "")
        env_secret = self._env.get("AWS_SECRET_ACCESS_KEY", "")
        if env_key and env_secret:
            return AWSCredentials(env_key, env_secret, self._env.get("AWS_SESSION_TOKEN", ""))
        found = self._profile_credentials()
        if found is not None:
            return found
        raise AuthError(
            f"no AWS credentials: sigv4.access_key/secret_key are not set, AWS_ACCESS_KEY_ID/"
            f"AWS_SECRET_ACCESS_KEY are not set, and profile {self._profile_name()!r} has no "
            f"keys in {self._credentials_file()}"
        )

    def _profile_credentials(self) -> AWSCredentials | None:
        section = _profile_section(self._credentials_file(), self._profile_name(), False)
        key = section.get("aws_access_key_id", "")
        secret = section.get("aws_secret_access_key", "")
        if not (key and secret):
            return None
        return AWSCredentials(key, secret, section.get("aws_session_token", ""))

    def _sts_url(self, region: str) -> str:
        override = self._env.get("AWS_ENDPOINT_URL_STS") or self._env.get("AWS_ENDPOINT_URL")
        return override or f"https://sts.{region}.amazonaws.com/"

    async def _assume_role(
        self, role_arn: str, base: AWSCredentials, region: str
    ) -> AWSCredentials:
        url = self._sts_url(region)
        form = {
            "Action": "AssumeRole",
            "RoleArn": role_arn,
            "RoleSessionName": f"rwconsole-{int(time.time())}",
            "Version": "2011-06-15",
        }
        body = urllib.parse.urlencode(form).encode()
        if self._sts_client is None:
            self._sts_client = httpx.AsyncClient(timeout=30.0)
        request = self._sts_client.build_request(
            "POST",
            url,
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        )
        sign_request(request, base, region, "sts")
        where = redact_url(url)
        try:
            response = await self._sts_client.send(request)
        except httpx.HTTPError as exc:
            raise AuthError(
                f"STS AssumeRole request to {where} failed: {describe_exc(exc)}"
            ) from None
        if response.status_code != 200:
            detail = _xml_text(response.content, "Message") or response.text[:300].strip()
            raise AuthError(
                f"STS AssumeRole for sigv4.role_arn {role_arn!r} failed: HTTP "
                f"{response.status_code}: {detail}"
            )
        key = _xml_text(response.content, "AccessKeyId")
        secret = _xml_text(response.content, "SecretAccessKey")
        token = _xml_text(response.content, "SessionToken")
        if not (key and secret and token):
            raise AuthError(f"STS AssumeRole response from {where} has no credentials")
        lifetime = _seconds_until(_xml_text(response.content, "Expiration"))
        return AWSCredentials(key, secret, token, token_refresh_at(now_monotonic(), lifetime))

    async def aclose(self) -> None:
        if self._sts_client is not None:
            await self._sts_client.aclose()
            self._sts_client = None


def _profile_setting(path: str, profile: str, name: str, config_file: bool) -> str:
    return _profile_section(path, profile, config_file).get(name, "")


_parsed_files: dict[str, tuple[int, configparser.RawConfigParser]] = {}


def _profile_section(path: str, profile: str, config_file: bool) -> dict[str, str]:
    """One profile's settings; a file is parsed again only when it changed (so rotated
    credentials are picked up on the next request without parsing it per request)."""
    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError:
        return {}
    cached = _parsed_files.get(path)
    if cached is None or cached[0] != stamp:
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            return {}
        cached = _parsed_files[path] = (stamp, parser)
    parser = cached[1]
    section = profile if not config_file or profile == "default" else f"profile {profile}"
    if not parser.has_section(section):
        return {}
    return {k: v.strip() for k, v in parser.items(section)}


def _xml_text(content: bytes, local_name: str) -> str:
    try:
        root = ET.fromstring(content)
    except ET.ParseError:
        return ""
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == local_name:
            return (element.text or "").strip()
    return ""


def _seconds_until(iso: str) -> float | None:
    if not iso:
        return None
    try:
        moment = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return (moment - dt.datetime.now(dt.UTC)).total_seconds()
