"""Azure AD: the token requests produced for managed identity, OAuth and SDK credentials."""

from __future__ import annotations

import json
import urllib.parse

import pytest
from http_helpers import HTTPServer, Request, Response, endpoint, run, secret

from rwconsole.config.schema import (
    AzureADConfig,
    AzureOAuthConfig,
    AzureSDKConfig,
    ManagedIdentityConfig,
)
from rwconsole.http.errors import ConnectivityConfigError
from rwconsole.remote.client import RemoteWriteClient

pytestmark = pytest.mark.timeout(30)
UA = "rwconsole-test"


def _token(request: Request) -> Response:
    payload = {"access_token": "az-token", "expires_in": "3599", "token_type": "Bearer"}
    return Response(200, [("Content-Type", "application/json")], json.dumps(payload).encode())


@pytest.fixture
def azure_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_TENANT_ID",
        "AZURE_FEDERATED_TOKEN_FILE",
        "AZURE_AUTHORITY_HOST",
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


async def _two_sends(config: object) -> list[str]:
    client = RemoteWriteClient(config, user_agent=UA)
    try:
        return [(await client.send(b"x", protocol=1, attempt=0)).outcome for _ in range(2)]
    finally:
        await client.aclose()


def test_managed_identity_asks_imds(azure_env: pytest.MonkeyPatch) -> None:
    async def body() -> None:
        imds = await HTTPServer(_token).start()
        receiver = await HTTPServer().start()
        azure_env.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", imds.url)
        azuread = AzureADConfig(managed_identity=ManagedIdentityConfig(client_id="mi-123"))
        try:
            outcomes = await _two_sends(endpoint(receiver.url, azuread=azuread))
        finally:
            await receiver.aclose()
            await imds.aclose()
        assert outcomes == ["ok", "ok"]
        (request,) = imds.requests  # the token is cached
        path, _, query = request.target.partition("?")
        assert request.method == "GET" and path == "/metadata/identity/oauth2/token"
        assert dict(urllib.parse.parse_qsl(query)) == {
            "api-version": "2018-02-01",
            "resource": "https://monitor.azure.com/",
            "client_id": "mi-123",
        }
        assert request.header("Metadata") == "true"
        assert [r.header("Authorization") for r in receiver.requests] == ["Bearer az-token"] * 2

    run(body)


def test_oauth_client_credentials_against_the_clouds_login_host(
    azure_env: pytest.MonkeyPatch,
) -> None:
    async def body() -> None:
        login = await HTTPServer(_token).start()
        receiver = await HTTPServer().start()
        azure_env.setenv("AZURE_AUTHORITY_HOST", login.url + "/")
        azuread = AzureADConfig(
            cloud="AzureGovernment",
            oauth=AzureOAuthConfig(
                client_id="app-1", client_secret=secret("app-secret"), tenant_id="tenant-9"
            ),
        )
        try:
            outcomes = await _two_sends(endpoint(receiver.url, azuread=azuread))
        finally:
            await receiver.aclose()
            await login.aclose()
        assert outcomes == ["ok", "ok"]
        (request,) = login.requests
        assert request.method == "POST" and request.target == "/tenant-9/oauth2/v2.0/token"
        assert dict(urllib.parse.parse_qsl(request.body.decode())) == {
            "grant_type": "client_credentials",
            "client_id": "app-1",
            "client_secret": "app-secret",
            "scope": "https://monitor.azure.us//.default",
        }

    run(body)


def test_sdk_uses_environment_credentials(azure_env: pytest.MonkeyPatch) -> None:
    async def body() -> None:
        login = await HTTPServer(_token).start()
        receiver = await HTTPServer().start()
        azure_env.setenv("AZURE_AUTHORITY_HOST", login.url)
        azure_env.setenv("AZURE_CLIENT_ID", "env-app")
        azure_env.setenv("AZURE_CLIENT_SECRET", "env-secret")
        azuread = AzureADConfig(cloud="AzureChina", sdk=AzureSDKConfig(tenant_id="t-1"))
        try:
            outcomes = await _two_sends(endpoint(receiver.url, azuread=azuread))
        finally:
            await receiver.aclose()
            await login.aclose()
        assert outcomes == ["ok", "ok"]
        (request,) = login.requests
        assert request.target == "/t-1/oauth2/v2.0/token"
        form = dict(urllib.parse.parse_qsl(request.body.decode()))
        assert form["client_id"] == "env-app" and form["client_secret"] == "env-secret"
        assert form["scope"] == "https://monitor.azure.cn//.default"

    run(body)


def test_token_endpoint_failure_is_recoverable(azure_env: pytest.MonkeyPatch) -> None:
    async def body() -> None:
        login = await HTTPServer(lambda request: Response(400, body=b"AADSTS7000215")).start()
        receiver = await HTTPServer().start()
        azure_env.setenv("AZURE_AUTHORITY_HOST", login.url)
        azuread = AzureADConfig(
            oauth=AzureOAuthConfig(
                client_id="a", client_secret=secret("never-shown"), tenant_id="t"
            )
        )
        client = RemoteWriteClient(endpoint(receiver.url, azuread=azuread), user_agent=UA)
        try:
            result = await client.send(b"x", protocol=1, attempt=0)
        finally:
            await client.aclose()
            await receiver.aclose()
            await login.aclose()
        assert result.outcome == "recoverable" and "HTTP 400" in result.reason
        assert "never-shown" not in result.reason
        assert receiver.requests == []

    run(body)


def test_unknown_cloud_is_a_config_error() -> None:
    with pytest.raises(ConnectivityConfigError, match=r"azuread\.cloud"):
        RemoteWriteClient(
            endpoint(
                "http://127.0.0.1:9/", azuread=AzureADConfig(cloud="Mars", sdk=AzureSDKConfig())
            ),
            user_agent=UA,
        )
