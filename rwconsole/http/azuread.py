"""Azure AD (Microsoft Entra ID) tokens for an endpoint's ``azuread`` block.

Owns the three credential kinds of Alloy's block and their token requests:

- ``managed_identity { client_id }``: the instance metadata service (IMDS),
  ``GET /metadata/identity/oauth2/token`` with ``Metadata: true``;
- ``oauth { client_id, client_secret, tenant_id }``: client credentials
  against the cloud's login host;
- ``sdk { tenant_id }``: credentials from the environment like the Azure SDK's
  default chain: ``AZURE_CLIENT_ID`` + ``AZURE_CLIENT_SECRET``, else workload
  identity (``AZURE_FEDERATED_TOKEN_FILE``), else managed identity.

``cloud`` selects the login host and the token audience (Azure Monitor
ingestion: ``https://monitor.azure.com//.default`` for AzurePublic, ``.cn``
for AzureChina, ``.us`` for AzureGovernment); ``scope`` overrides the audience.
The Azure SDK's ``AZURE_AUTHORITY_HOST`` and ``AZURE_POD_IDENTITY_AUTHORITY_HOST``
environment variables override the login host and the IMDS host.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from rwconsole.config.secrets import redact_url
from rwconsole.http.errors import AuthError, ConnectivityConfigError, describe_exc
from rwconsole.http.options import opt, read_secret_file, reveal
from rwconsole.http.tokens import Token, now_monotonic, parse_token_response, post_token_form


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
        self, block: object, *, timeout: float = 30.0, environ: Mapping[str, str] | None = None
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
        self._token: Token | None = None
        self._lock = asyncio.Lock()
        self.requests = 0

    @property
    def _env(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    @property
    def scope(self) -> str:
        return opt(self._block, "scope", "") or self._cloud.audience

    async def token(self) -> Token:
        async with self._lock:
            cached = self._token
            if cached is not None and now_monotonic() < cached.refresh_at:
                return cached
            self._token = None
            self.requests += 1
            self._token = await self._fetch()
            return self._token

    def invalidate(self) -> None:
        self._token = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout)
        return self._client

    async def _fetch(self) -> Token:
        if self._kind == "managed_identity":
            client_id = opt(opt(self._block, "managed_identity"), "client_id", "")
            return await self._imds(client_id)
        if self._kind == "oauth":
            block = opt(self._block, "oauth")
            secret = reveal(opt(block, "client_secret")) or ""
            return await self._client_credentials(
                opt(block, "tenant_id", ""), opt(block, "client_id", ""), secret, "azuread.oauth"
            )
        return await self._sdk()

    async def _sdk(self) -> Token:
        sdk = opt(self._block, "sdk")
        tenant = opt(sdk, "tenant_id", "") or self._env.get("AZURE_TENANT_ID", "")
        client_id = self._env.get("AZURE_CLIENT_ID", "")
        secret = self._env.get("AZURE_CLIENT_SECRET", "")
        if client_id and secret:
            return await self._client_credentials(tenant, client_id, secret, "azuread.sdk")
        token_file = self._env.get("AZURE_FEDERATED_TOKEN_FILE", "")
        if client_id and token_file:
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
        return await self._imds(client_id)

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

    async def _imds(self, client_id: str) -> Token:
        host = self._env.get("AZURE_POD_IDENTITY_AUTHORITY_HOST", "") or IMDS_HOST
        url = f"{host.rstrip('/')}/metadata/identity/oauth2/token"
        resource = self.scope.removesuffix("/.default")
        params = {"api-version": IMDS_API_VERSION, "resource": resource}
        if client_id:
            params["client_id"] = client_id
        try:
            response = await self._http().get(url, params=params, headers={"Metadata": "true"})
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
