"""OAuth 2.0 client-credentials tokens for an endpoint's ``oauth2`` block.

Owns the token request (``client_id``, ``client_secret`` or
``client_secret_file``, ``scopes``, ``token_url``, ``endpoint_params``), sent
through the block's own proxy settings and ``tls_config``, and the token cache:
a token is reused until shortly before it expires, and fetched again at once
when the client secret (e.g. a rotated ``client_secret_file``) changes. The
client credentials go in the form body, as Prometheus sends them. Failures
raise ``AuthError`` with a message that never contains the secret.
"""

from __future__ import annotations

import asyncio

import httpx

from rwconsole.http.errors import AuthError, ConnectivityConfigError
from rwconsole.http.options import opt, secret_or_file
from rwconsole.http.tokens import Token, now_monotonic, post_token_form
from rwconsole.http.transport import build_transport


class OAuth2TokenSource:
    """Gets and caches bearer tokens for one ``oauth2`` block."""

    def __init__(self, block: object, *, timeout: float = 30.0) -> None:
        self._block = block
        token_url = opt(block, "token_url", "")
        if not token_url:
            raise ConnectivityConfigError("oauth2.token_url is not set")
        self._token_url: str = token_url
        transport = build_transport(block, http2=False, lean_http1=False, key="oauth2")
        self._client = httpx.AsyncClient(transport=transport, timeout=timeout, trust_env=False)
        self._token: Token | None = None
        self._secret_used: str | None = None
        self._lock = asyncio.Lock()
        self.requests = 0  # token requests made (shown in diagnostics and tests)

    async def token(self) -> Token:
        """A valid token, fetching a new one when needed."""
        async with self._lock:
            secret = secret_or_file(
                opt(self._block, "client_secret"),
                opt(self._block, "client_secret_file"),
                "oauth2.client_secret",
                "oauth2.client_secret_file",
            )
            if secret is None:
                raise AuthError("oauth2 needs client_secret or client_secret_file")
            cached = self._token
            if (
                cached is not None
                and secret == self._secret_used
                and now_monotonic() < cached.refresh_at
            ):
                return cached
            self._token = None
            self.requests += 1
            token = await post_token_form(
                self._client, self._token_url, self._form(secret), what="oauth2 token"
            )
            self._token, self._secret_used = token, secret
            return token

    def invalidate(self) -> None:
        """Forget the cached token (after the receiver answered 401)."""
        self._token = None

    def _form(self, secret: str) -> dict[str, str]:
        form = {
            "grant_type": "client_credentials",
            "client_id": opt(self._block, "client_id", ""),
            "client_secret": secret,
        }
        scopes = opt(self._block, "scopes", []) or []
        if scopes:
            form["scope"] = " ".join(scopes)
        for name, value in (opt(self._block, "endpoint_params", {}) or {}).items():
            form[name] = str(value)
        return form

    async def aclose(self) -> None:
        await self._client.aclose()
