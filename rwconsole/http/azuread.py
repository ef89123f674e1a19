"""Azure AD (Microsoft Entra ID) tokens for an endpoint's ``azuread`` block.

Owns the three credential kinds of Alloy's block and their token requests:

- ``managed_identity { client_id }``: the instance metadata service (IMDS),
  ``GET /metadata/identity/oauth2/token`` with ``Metadata: true``;
- ``oauth { client_id, client_secret, tenant_id }``: client credentials
  against the cloud's login host;
- ``sdk { tenant_id }``: the Azure SDK's default chain: ``AZURE_CLIENT_ID`` +
  ``AZURE_CLIENT_SECRET``, else workload identity (``AZURE_FEDERATED_TOKEN_FILE``
  + ``AZURE_CLIENT_ID`` + tenant: the federated token exchanged for an access
  token), else managed identity when the IMDS answers, else the Azure CLI.

Tokens are cached and refreshed five minutes before they expire
(``credential_cache``); ``credential_status`` tells the console which source
is in use.

``cloud`` selects the login host and the token audience (Azure Monitor
ingestion: ``https://monitor.azure.com//.default`` for AzurePublic, ``.cn``
for AzureChina, ``.us`` for AzureGovernment); ``scope`` overrides the audience.
The Azure SDK's ``AZURE_AUTHORITY_HOST`` and ``AZURE_POD_IDENTITY_AUTHORITY_HOST``
environment variables override the login host and the IMDS host.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from rwconsole.config.secrets import redact_url
from rwconsole.http.azure_credentials import (
    Unavailable,
    azure_cli_token,
    fetched_token,
)
from rwconsole.http.credential_cache import (
    Clock,
    CredentialStatus,
    Fetched,
    RefreshingCredential,
)
from rwconsole.http.errors import AuthError, ConnectivityConfigError, describe_exc
from rwconsole.http.options import opt, read_secret_file, reveal
from rwconsole.http.tokens import Token, parse_token_response, post_token_form


@dataclass(frozen=True, slots=True)
class AzureCloud:
    login_host: str
    audience: str


CLOUDS: dict[str, AzureCloud] = {
    "AzurePublic": AzureCloud(
        "https://login.microsoftonline.com/", "https://monitor.azure.com//.default"
    ),
    "AzureChina": AzureCloud(
        "https://login.chinacloudapi.cn/", "https://monitor.azure.cn//.default"
    ),
    "AzureGovernment": AzureCloud(
        "https://login.microsoftonline.us/", "https://monitor.azure.us//.default"
    ),
}

IMDS_HOST = "http://169.254.169.254"
IMDS_API_VERSION = "2018-02-01"
_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class AzureADTokenSource:
    """Gets and caches Azure AD tokens for one ``azuread`` block."""

    def __init__(
        self,
        block: object,
        *,
        timeout: float = 30.0,
        environ: Mapping[str, str] | None = None,
        name: str = "",
        clock: Clock = time.time,
    ) -> None:
        self._block = block
        self._environ = environ
        cloud_name = opt(block, "cloud", "") or "AzurePublic"
        try:
            self._cloud = CLOUDS[cloud_name]
        except KeyError:
            raise ConnectivityConfigError(
                f"azuread.cloud: unknown cloud {cloud_name!r} (use one of {', '.join(CLOUDS)})"
            ) from None
        kinds = [k for k in ("managed_identity", "oauth", "sdk") if opt(block, k) is not None]
        if len(kinds) != 1:
            raise ConnectivityConfigError(
                "azuread needs exactly one of managed_identity, oauth or sdk"
                + (f" (got {', '.join(kinds)})" if kinds else "")
            )
        self._kind = kinds[0]
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._clock = clock
        self._cache = RefreshingCredential(self._fetch, label=name, clock=clock)
        self.requests = 0

    @property
    def _env(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    @property
    def scope(self) -> str:
        return opt(self._block, "scope", "") or self._cloud.audience

    async def token(self) -> Token:
        return await self._cache.get()

    def invalidate(self) -> None:
        self._cache.invalidate()

    def credential_status(self) -> CredentialStatus:
        return self._cache.status()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout)
        return self._client

    async def _fetch(self) -> Fetched[Token]:
        self.requests += 1
        if self._kind == "managed_identity":
            client_id = opt(opt(self._block, "managed_identity"), "client_id", "")
            return self._fetched(await self._imds(client_id), _mi_source(client_id))
        if self._kind == "oauth":
            block = opt(self._block, "oauth")
            secret = reveal(opt(block, "client_secret")) or ""
            client_id = opt(block, "client_id", "")
            token = await self._client_credentials(
                opt(block, "tenant_id", ""), client_id, secret, "azuread.oauth"
            )
            return self._fetched(token, f"azuread.oauth client secret (client {client_id})")
        return await self._sdk()

    def _fetched(self, token: Token, source: str) -> Fetched[Token]:
        return fetched_token(token, source, self._clock)

    async def _sdk(self) -> Fetched[Token]:
        sdk = opt(self._block, "sdk")
        tenant = opt(sdk, "tenant_id", "") or self._env.get("AZURE_TENANT_ID", "")
        client_id = self._env.get("AZURE_CLIENT_ID", "")
        secret = self._env.get("AZURE_CLIENT_SECRET", "")
        if client_id and secret:
            token = await self._client_credentials(tenant, client_id, secret, "azuread.sdk")
            return self._fetched(token, f"environment client secret (AZURE_CLIENT_ID {client_id})")
        token_file = self._env.get("AZURE_FEDERATED_TOKEN_FILE", "")
        if client_id and token_file:
            return self._fetched(
                await self._workload_identity(tenant, client_id, token_file),
                f"workload identity (AZURE_CLIENT_ID {client_id})",
            )
        try:
            return self._fetched(await self._imds(client_id, probe=True), _mi_source(client_id))
        except Unavailable as no_imds:
            try:
                return await azure_cli_token(
                    self.scope.removesuffix("/.default"), tenant, self._env, self._clock
                )
            except Unavailable as no_cli:
                raise AuthError(
                    "azuread.sdk: no credentials: AZURE_CLIENT_ID + AZURE_CLIENT_SECRET or "
                    f"AZURE_FEDERATED_TOKEN_FILE are not set; {no_imds}; {no_cli}"
                ) from None

    async def _workload_identity(self, tenant: str, client_id: str, token_file: str) -> Token:
        """The federated token (re-read every time; the kubelet rotates it) exchanged."""
        assertion = read_secret_file(token_file, "AZURE_FEDERATED_TOKEN_FILE")
        form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_assertion_type": _ASSERTION_TYPE,
            "client_assertion": assertion,
            "scope": self.scope,
        }
        return await post_token_form(
            self._http(),
            self._token_url(tenant, "azuread.sdk"),
            form,
            what="azuread workload identity token",
        )

    def _token_url(self, tenant: str, key: str) -> str:
        if not tenant:
            raise AuthError(f"{key}: tenant_id is not set (nor AZURE_TENANT_ID)")
        host = self._env.get("AZURE_AUTHORITY_HOST", "") or self._cloud.login_host
        return f"{host.rstrip('/')}/{tenant}/oauth2/v2.0/token"

    async def _client_credentials(
        self, tenant: str, client_id: str, secret: str, key: str
    ) -> Token:
        if not client_id or not secret:
            raise AuthError(f"{key}: client_id and client_secret are required")
        form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "scope": self.scope,
        }
        return await post_token_form(
            self._http(), self._token_url(tenant, key), form, what=f"{key} token"
        )

    async def _imds(self, client_id: str, *, probe: bool = False) -> Token:
        """A managed identity token; with ``probe``, an IMDS that cannot be reached
        within a second raises ``Unavailable`` (the sdk chain then asks the CLI)."""
        host = self._env.get("AZURE_POD_IDENTITY_AUTHORITY_HOST", "") or IMDS_HOST
        url = f"{host.rstrip('/')}/metadata/identity/oauth2/token"
        resource = self.scope.removesuffix("/.default")
        params = {"api-version": IMDS_API_VERSION, "resource": resource}
        if client_id:
            params["client_id"] = client_id
        timeout = httpx.Timeout(self._timeout, connect=1.0) if probe else self._timeout
        try:
            response = await self._http().get(
                url, params=params, headers={"Metadata": "true"}, timeout=timeout
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            if not probe:
                raise AuthError(
                    f"azuread managed identity token request to {redact_url(url)} failed: "
                    f"{describe_exc(exc)}"
                ) from None
            raise Unavailable(
                f"managed identity: IMDS at {redact_url(url)} is not reachable "
                f"({describe_exc(exc)})"
            ) from None
        except httpx.HTTPError as exc:
            raise AuthError(
                f"azuread managed identity token request to {redact_url(url)} failed: "
                f"{describe_exc(exc)}"
            ) from None
        return parse_token_response(response, url, what="azuread managed identity token")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _mi_source(client_id: str) -> str:
    return f"managed identity ({'client ' + client_id if client_id else 'system-assigned'})"
