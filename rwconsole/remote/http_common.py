"""Small pieces shared by the remote-write HTTP client and its authenticators.

Owns: reading config attributes by Alloy name without depending on the config
classes (duck typing), revealing secrets and re-reading ``*_file`` secrets,
the errors the connectivity layer raises (``ConnectivityConfigError`` for bad
settings found when a client is built, ``AuthError`` for credentials that could
not be obtained for one request), cached expiring tokens, and redaction of
URL passwords in any text shown to people.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from rwconsole.config.secrets import redact_url


class SecretLike(Protocol):
    """What a ``Secret`` offers: its value on demand, never in ``str()``."""

    def reveal(self) -> str: ...


class ConnectivityConfigError(ValueError):
    """A setting of an endpoint cannot be used (bad file, unsupported option).

    The message names the setting by its key path, e.g. ``tls_config.ca_file``.
    """


class AuthError(Exception):
    """Credentials for one request could not be obtained.

    The message is safe to show: it never contains a secret value.
    """


def opt(obj: object, name: str, default: Any = None) -> Any:
    """``obj.name`` if the block is set and has the attribute, else ``default``."""
    if obj is None:
        return default
    value = getattr(obj, name, default)
    return default if value is None else value


def reveal(value: SecretLike | str | None) -> str | None:
    """The plain value of a secret (a ``Secret`` or a plain string).

    Raises ``AuthError`` when the secret refers to something unreadable now.
    """
    if value is None:
        return None
    # Checked before ``str``: a config ``Secret`` is a ``str`` whose text is redacted.
    if hasattr(value, "reveal"):
        try:
            return value.reveal()
        except Exception as exc:  # a missing variable or unreadable file behind the secret
            raise AuthError(str(exc)) from None
    return str(value)


def read_secret_file(path: str, key: str) -> str:
    """Read a secret file now (files are re-read per request, so rotation works).

    Surrounding whitespace is trimmed, as Prometheus does. ``key`` names the
    setting for the error message.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise AuthError(f"cannot read {key} {path!r}: {reason}") from None


def secret_or_file(
    secret: SecretLike | str | None, path: str | None, key: str, file_key: str
) -> str | None:
    """The value of ``key`` or, when only ``file_key`` is set, of that file."""
    value = reveal(secret)
    if value:
        return value
    if path:
        return read_secret_file(path, file_key)
    return None


@dataclass(frozen=True, slots=True)
class Token:
    """An access token and the monotonic time it stops being usable."""

    value: str
    token_type: str
    refresh_at: float


def token_refresh_at(now: float, lifetime: float | None) -> float:
    """When to fetch a new token: a little before expiry.

    The margin is 10 s (as Go's oauth2 package uses) but never more than a
    tenth of the lifetime, so short-lived tokens are still reused. A token
    without a lifetime is kept for an hour.
    """
    if lifetime is None or lifetime <= 0:
        return now + 3600.0 if lifetime is None else now
    return now + lifetime - min(10.0, lifetime / 10.0)


def now_monotonic() -> float:
    return time.monotonic()


MAX_AUTH_BODY = 512


async def post_token_form(
    client: httpx.AsyncClient,
    url: str,
    form: dict[str, str],
    *,
    what: str,
    headers: dict[str, str] | None = None,
) -> Token:
    """POST an OAuth2 token request (form encoded) and parse the JSON answer.

    Raises ``AuthError`` with a message naming ``what`` for any failure.
    """
    try:
        response = await client.post(url, data=form, headers=headers)
    except httpx.HTTPError as exc:
        raise AuthError(
            f"{what} request to {redact_url(url)} failed: {describe_exc(exc)}"
        ) from None
    return parse_token_response(response, url, what=what)


def parse_token_response(response: httpx.Response, url: str, *, what: str) -> Token:
    """Turn a token endpoint's JSON answer into a ``Token`` or raise ``AuthError``."""
    now = now_monotonic()
    where = redact_url(url)
    if response.status_code // 100 != 2:
        body = response.content[:MAX_AUTH_BODY].decode("utf-8", "replace").strip()
        detail = f": {body}" if body else ""
        raise AuthError(f"{what} request to {where} failed: HTTP {response.status_code}{detail}")
    try:
        payload = response.json()
    except ValueError:
        raise AuthError(f"{what} response from {where} is not JSON") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("access_token"), str):
        raise AuthError(f"{what} response from {where} has no access_token")
    lifetime: float | None = None
    raw = payload.get("expires_in")
    if raw is not None:
        try:
            lifetime = float(raw)
        except (TypeError, ValueError):
            lifetime = None
    token_type = payload.get("token_type") or "Bearer"
    if not isinstance(token_type, str) or token_type.lower() == "bearer":
        token_type = "Bearer"
    return Token(payload["access_token"], token_type, token_refresh_at(now, lifetime))


def describe_exc(exc: BaseException) -> str:
    """Readable text for a network exception (some httpx errors have empty text)."""
    text = str(exc).strip()
    name = type(exc).__name__
    return redact_url(f"{name}: {text}" if text else name)
