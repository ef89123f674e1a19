"""AWS credentials and the sources that hand them out over HTTP.

Owns ``AWSCredentials`` and the requests of three documented protocols, each
turned into ``Fetched`` credentials with their expiry:

- STS ``AssumeRole`` (signed with the base credentials) and
  ``AssumeRoleWithWebIdentity`` (unsigned; the web identity token from its
  file), form-encoded POSTs answered with XML. The endpoint is the regional
  ``https://sts.<region>.amazonaws.com/`` (``.amazonaws.com.cn`` in China),
  the global one when ``AWS_STS_REGIONAL_ENDPOINTS=legacy``, or the AWS SDK's
  ``AWS_ENDPOINT_URL_STS`` / ``AWS_ENDPOINT_URL``.
- The ECS/EKS container credentials endpoint: ``GET`` of
  ``http://169.254.170.2`` + ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI``, or of
  ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` (https, or http to a loopback address
  or the ECS/EKS link-local hosts), with ``Authorization`` from
  ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` (re-read on every refresh) or
  ``AWS_CONTAINER_AUTHORIZATION_TOKEN``.
- EC2 instance metadata, IMDSv2: ``PUT /latest/api/token``, then the role name
  and its credentials under ``/latest/meta-data/iam/security-credentials/``
  with the session token. ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` (or
  ``_ENDPOINT_MODE=IPv6``) moves it, ``AWS_EC2_METADATA_DISABLED=true`` turns
  it off, ``AWS_METADATA_SERVICE_TIMEOUT`` sets the timeout (1 s). Falling
  back to IMDSv1 (no token) is off unless ``AWS_EC2_METADATA_V1_DISABLED=false``.

Metadata requests never go through a proxy; STS requests honour the usual
proxy environment variables. Error messages never contain a secret.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from rwconsole.config.secrets import redact_url
from rwconsole.http.credential_cache import Fetched, parse_expiry
from rwconsole.http.errors import AuthError, describe_exc
from rwconsole.http.options import read_secret_file
from rwconsole.http.tokens import MAX_AUTH_BODY


@dataclass(frozen=True, slots=True)
class AWSCredentials:
    access_key: str
    secret_key: str
    session_token: str = ""

    def __repr__(self) -> str:
        return f"AWSCredentials(access_key={self.access_key!r}, secret_key=<secret>)"


# sign_request(request, credentials, region, service) from the sigv4 module.
Signer = Callable[[httpx.Request, AWSCredentials, str, str], object]

STS_VERSION = "2011-06-15"
IMDS_HOST = "http://169.254.169.254"
IMDS_HOST_IPV6 = "http://[fd00:ec2::254]"
IMDS_TOKEN_TTL = "21600"
ECS_HOST = "http://169.254.170.2"
# Hosts a plain-http full URI may name besides loopback (ECS and EKS Pod Identity agents).
_CONTAINER_HOSTS = frozenset({"169.254.170.2", "169.254.170.23", "fd00:ec2::23"})


def metadata_client() -> httpx.AsyncClient:
    """The client for link-local credential endpoints (never proxied)."""
    return httpx.AsyncClient(timeout=httpx.Timeout(5.0, connect=1.0), trust_env=False)


def sts_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=30.0)


# ---- STS --------------------------------------------------------------------------------


def sts_url(environ: Mapping[str, str], region: str) -> str:
    override = environ.get("AWS_ENDPOINT_URL_STS") or environ.get("AWS_ENDPOINT_URL")
    if override:
        return override
    if environ.get("AWS_STS_REGIONAL_ENDPOINTS", "").lower() == "legacy":
        return "https://sts.amazonaws.com/"
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://sts.{region}.{suffix}/"


async def assume_role(
    client: httpx.AsyncClient,
    url: str,
    form: dict[str, str],
    *,
    region: str,
    base: AWSCredentials | None = None,
    sign: Signer | None = None,
) -> tuple[AWSCredentials, float | None]:
    """Send an STS ``AssumeRole*`` form; sign it with ``base`` when given.

    Returns the temporary credentials and their expiry (Unix time).
    """
    action = form["Action"]
    body = urllib.parse.urlencode({**form, "Version": STS_VERSION}).encode()
    request = client.build_request(
        "POST",
        url,
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    if base is not None and sign is not None:
        sign(request, base, region, "sts")
    where = redact_url(url)
    try:
        response = await client.send(request)
    except httpx.HTTPError as exc:
        raise AuthError(f"STS {action} request to {where} failed: {describe_exc(exc)}") from None
    if response.status_code != 200:
        detail = _xml_text(response.content, "Message") or _body_text(response)
        raise AuthError(
            f"STS {action} for role {form['RoleArn']!r} failed: HTTP "
            f"{response.status_code}: {detail}"
        )
    key = _xml_text(response.content, "AccessKeyId")
    secret = _xml_text(response.content, "SecretAccessKey")
    token = _xml_text(response.content, "SessionToken")
    if not (key and secret and token):
        raise AuthError(f"STS {action} response from {where} has no credentials")
    expiry = parse_expiry(_xml_text(response.content, "Expiration"), f"STS {action} Expiration")
    return AWSCredentials(key, secret, token), expiry


def _xml_text(content: bytes, local_name: str) -> str:
    try:
        root = ET.fromstring(content)
    except ET.ParseError:
        return ""
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == local_name:
            return (element.text or "").strip()
    return ""


def _body_text(response: httpx.Response) -> str:
    return response.content[:MAX_AUTH_BODY].decode("utf-8", "replace").strip()


# ---- ECS / EKS container credentials ------------------------------------------------------


def container_url(environ: Mapping[str, str]) -> str | None:
    """The container credentials URL, or None when the container provides none."""
    relative = environ.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "")
    if relative:
        return ECS_HOST + (relative if relative.startswith("/") else "/" + relative)
    full = environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI", "")
    if not full:
        return None
    parsed = urllib.parse.urlsplit(full)
    host = parsed.hostname or ""
    if parsed.scheme == "https" or (parsed.scheme == "http" and _allowed_http_host(host)):
        return full
    raise AuthError(
        f"AWS_CONTAINER_CREDENTIALS_FULL_URI {redact_url(full)!r} must use https, or http to "
        "a loopback address or the ECS/EKS credential agent"
    )


def _allowed_http_host(host: str) -> bool:
    if host == "localhost" or host in _CONTAINER_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def container_credentials(
    client: httpx.AsyncClient, environ: Mapping[str, str], url: str
) -> Fetched[AWSCredentials]:
    token_file = environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "")
    if token_file:
        token = read_secret_file(token_file, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
    else:
        token = environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN", "")
    if "\r" in token or "\n" in token:
        raise AuthError("the container authorization token contains a line break")
    headers = {"Authorization": token} if token else {}
    where = redact_url(url)
    try:
        response = await client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        raise AuthError(
            f"container credentials request to {where} failed: {describe_exc(exc)}"
        ) from None
    credentials, expiry = _json_credentials(response, f"container credentials from {where}")
    return Fetched(credentials, f"container credentials ({where})", expiry)


def _json_credentials(response: httpx.Response, what: str) -> tuple[AWSCredentials, float | None]:
    """The ``AccessKeyId``/``SecretAccessKey``/``Token``/``Expiration`` JSON of ECS and IMDS."""
    if response.status_code != 200:
        raise AuthError(f"{what}: HTTP {response.status_code}: {_body_text(response)}")
    try:
        payload = response.json()
    except ValueError:
        raise AuthError(f"{what}: the answer is not JSON") from None
    if not isinstance(payload, dict):
        raise AuthError(f"{what}: the answer is not a JSON object")
    code = payload.get("Code", "Success")
    if code != "Success":
        raise AuthError(f"{what}: Code {str(code)[:60]!r}: {str(payload.get('Message', ''))[:200]}")
    key, secret = payload.get("AccessKeyId"), payload.get("SecretAccessKey")
    token = payload.get("Token") or ""
    if not (isinstance(key, str) and isinstance(secret, str) and key and secret):
        raise AuthError(f"{what}: no AccessKeyId/SecretAccessKey in the answer")
    expiry = parse_expiry(str(payload.get("Expiration") or ""), f"{what}: Expiration")
    return AWSCredentials(key, secret, str(token)), expiry


# ---- EC2 instance metadata -------------------------------------------------------------------


def imds_enabled(environ: Mapping[str, str]) -> bool:
    return environ.get("AWS_EC2_METADATA_DISABLED", "").lower() != "true"


def imds_base(environ: Mapping[str, str]) -> str:
    endpoint = environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", "")
    if endpoint:
        return endpoint.rstrip("/")
    if environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "").lower() == "ipv6":
        return IMDS_HOST_IPV6
    return IMDS_HOST


async def imds_credentials(
    client: httpx.AsyncClient, environ: Mapping[str, str]
) -> Fetched[AWSCredentials]:
    base = imds_base(environ)
    try:
        timeout = float(environ.get("AWS_METADATA_SERVICE_TIMEOUT", "") or 1.0)
    except ValueError:
        raise AuthError("AWS_METADATA_SERVICE_TIMEOUT is not a number of seconds") from None
    v1_allowed = environ.get("AWS_EC2_METADATA_V1_DISABLED", "").lower() == "false"
    where = redact_url(base)
    headers: dict[str, str] = {}
    try:
        response = await client.put(
            base + "/latest/api/token",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": IMDS_TOKEN_TTL},
            timeout=timeout,
        )
        if response.status_code == 200 and response.text.strip():
            headers["X-aws-ec2-metadata-token"] = response.text.strip()
        elif not v1_allowed or response.status_code not in (403, 404, 405):
            raise AuthError(
                f"EC2 instance metadata at {where}: IMDSv2 token request answered HTTP "
                f"{response.status_code} (IMDSv1 fallback is "
                f"{'on' if v1_allowed else 'off; AWS_EC2_METADATA_V1_DISABLED=false allows it'})"
            )
        path = base + "/latest/meta-data/iam/security-credentials/"
        listing = await client.get(path, headers=headers, timeout=timeout)
        if listing.status_code != 200 or not listing.text.strip():
            raise AuthError(
                f"EC2 instance metadata at {where}: no instance role "
                f"(HTTP {listing.status_code} for the role list)"
            )
        role = listing.text.strip().splitlines()[0].strip()
        answer = await client.get(path + urllib.parse.quote(role), headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise AuthError(
            f"EC2 instance metadata at {where} is not reachable: {describe_exc(exc)}"
        ) from None
    credentials, expiry = _json_credentials(answer, f"EC2 instance metadata at {where}")
    return Fetched(credentials, f"EC2 instance role {role}", expiry)


def read_web_identity_token(path: str, key: str) -> str:
    token = read_secret_file(path, key)
    if not token:
        raise AuthError(f"{key} {path!r} is empty")
    return token


def web_identity_form(role_arn: str, session_name: str, token: str) -> dict[str, str]:
    return {
        "Action": "AssumeRoleWithWebIdentity",
        "RoleArn": role_arn,
        "RoleSessionName": session_name,
        "WebIdentityToken": token,
    }
