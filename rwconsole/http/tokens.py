"""Expiring access tokens: their lifetime and the OAuth2-style token request.

Owns ``Token`` (a value and when to fetch a new one), the refresh margin, and
posting a form to a token endpoint and parsing its JSON answer into a
``Token`` or an ``AuthError`` that never contains a secret.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from rwconsole.config.secrets import redact_url
from rwconsole.http.errors import AuthError, describe_exc


@dataclass(frozen=True, slots=True)
class Token:
    """An access token, the monotonic time to fetch a new one, and when it expires.

    ``expires_at`` is the monotonic time the issuer gave (``None`` when it gave no
    lifetime); ``refresh_at`` is a little earlier, so a request never carries a token
    that expires on its way.
    """

    value: str
    token_type: str
    refresh_at: float
    expires_at: float | None = None


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
    expires_at = now + lifetime if lifetime is not None and lifetime > 0 else None
    return Token(payload["access_token"], token_type, token_refresh_at(now, lifetime), expires_at)
