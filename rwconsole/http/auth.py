"""Request authentication for a remote-write endpoint or a scrape job.

Owns the choice among the endpoint's authentication settings and applying it
to one request: ``basic_auth`` (``username`` + ``password`` or
``password_file``), ``bearer_token``/``bearer_token_file``, ``authorization``
(``type``, default ``Bearer``, + ``credentials`` or ``credentials_file``),
``oauth2`` (client credentials, see ``oauth2``), ``sigv4`` (see ``sigv4``) and
``azuread`` (see ``azuread``). Files named by ``*_file`` options are read on
every request, so a rotated secret is used from the next request on.

If several are set (configuration validation should prevent it), the first in
the order sigv4, azuread, oauth2, basic_auth, authorization, bearer_token wins.
Authentication is applied after all other headers, so sigv4 signs the final
request.
"""

from __future__ import annotations

import base64
from typing import Protocol

import httpx

from rwconsole.http.azuread import AzureADTokenSource
from rwconsole.http.credential_cache import CredentialStatus
from rwconsole.http.errors import AuthError
from rwconsole.http.oauth2 import OAuth2TokenSource
from rwconsole.http.options import opt, secret_or_file, unchanging
from rwconsole.http.sigv4 import SigV4Signer


class Authenticator(Protocol):
    kind: str

    async def apply(self, request: httpx.Request) -> None:
        """Add credentials to ``request``; raise ``AuthError`` when unavailable."""

    def fixed(self) -> bool:
        """Whether ``apply`` adds the same headers to every request (nothing read from
        a file, no token that expires, no signature of the request)."""

    def on_unauthorized(self) -> None:
        """The receiver answered 401: drop cached credentials."""

    def credential_status(self) -> CredentialStatus | None:
        """The cloud credential source in use and its expiry (None for other kinds)."""

    async def aclose(self) -> None: ...


class _NoAuth:
    kind = "none"

    async def apply(self, request: httpx.Request) -> None:
        return None

    def fixed(self) -> bool:
        return True

    def on_unauthorized(self) -> None:
        return None

    def credential_status(self) -> CredentialStatus | None:
        return None

    async def aclose(self) -> None:
        return None


class _HeaderAuth(_NoAuth):
    """basic_auth, authorization and bearer_token: one Authorization header."""

    def __init__(self, endpoint: object, kind: str) -> None:
        self._endpoint = endpoint
        self.kind = kind

    def _setting(self) -> tuple[object, str, str]:
        """The block holding the secret, and the names of the secret and its file."""
        if self.kind == "basic_auth":
            return opt(self._endpoint, "basic_auth"), "password", "password_file"
        if self.kind == "authorization":
            return opt(self._endpoint, "authorization"), "credentials", "credentials_file"
        return self._endpoint, "bearer_token", "bearer_token_file"

    def _header(self) -> str:
        block, name, file_name = self._setting()
        prefix = "" if self.kind == "bearer_token" else f"{self.kind}."
        secret = secret_or_file(
            opt(block, name), opt(block, file_name), prefix + name, prefix + file_name
        )
        if self.kind == "basic_auth":
            raw = f"{opt(block, 'username', '')}:{secret or ''}".encode()
            return "Basic " + base64.b64encode(raw).decode("ascii")
        scheme = (opt(block, "type", "") or "Bearer") if self.kind == "authorization" else "Bearer"
        return f"{scheme} {secret or ''}".rstrip()

    async def apply(self, request: httpx.Request) -> None:
        request.headers["Authorization"] = self._header()

    def fixed(self) -> bool:
        block, name, file_name = self._setting()
        return not opt(block, file_name) and unchanging(opt(block, name))


class _TokenAuth(_NoAuth):
    """oauth2 and azuread: a cached bearer token from a token source."""

    def __init__(self, source: OAuth2TokenSource | AzureADTokenSource, kind: str) -> None:
        self._source = source
        self.kind = kind

    async def apply(self, request: httpx.Request) -> None:
        token = await self._source.token()
        request.headers["Authorization"] = f"{token.token_type} {token.value}"

    def fixed(self) -> bool:
        return False

    def on_unauthorized(self) -> None:
        self._source.invalidate()

    def credential_status(self) -> CredentialStatus | None:
        if isinstance(self._source, AzureADTokenSource):
            return self._source.credential_status()
        return None

    async def aclose(self) -> None:
        await self._source.aclose()


class _SigV4Auth(_NoAuth):
    kind = "sigv4"

    def __init__(self, block: object, name: str) -> None:
        self._signer = SigV4Signer(block, name=name)

    async def apply(self, request: httpx.Request) -> None:
        await self._signer.sign(request)

    def fixed(self) -> bool:
        return False

    def on_unauthorized(self) -> None:
        self._signer.invalidate()

    def credential_status(self) -> CredentialStatus | None:
        return self._signer.credential_status()

    async def aclose(self) -> None:
        await self._signer.aclose()


def build_authenticator(endpoint: object, *, timeout: float = 30.0) -> Authenticator:
    """The authenticator for ``endpoint`` (raises ``ConnectivityConfigError`` on bad settings)."""
    queue_name = getattr(endpoint, "queue_name", None)  # the name used in logs and metrics
    name = queue_name() if callable(queue_name) else opt(endpoint, "name", "")
    if opt(endpoint, "sigv4") is not None:
        return _SigV4Auth(opt(endpoint, "sigv4"), name)
    if opt(endpoint, "azuread") is not None:
        source = AzureADTokenSource(opt(endpoint, "azuread"), timeout=timeout, name=name)
        return _TokenAuth(source, "azuread")
    if opt(endpoint, "oauth2") is not None:
        return _TokenAuth(OAuth2TokenSource(opt(endpoint, "oauth2"), timeout=timeout), "oauth2")
    if opt(endpoint, "basic_auth") is not None:
        return _HeaderAuth(endpoint, "basic_auth")
    if opt(endpoint, "authorization") is not None:
        return _HeaderAuth(endpoint, "authorization")
    if opt(endpoint, "bearer_token") is not None or opt(endpoint, "bearer_token_file"):
        return _HeaderAuth(endpoint, "bearer_token")
    return _NoAuth()


__all__ = ["AuthError", "Authenticator", "build_authenticator"]
