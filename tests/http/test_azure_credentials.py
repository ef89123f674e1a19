"""Azure AD workload identity, the Azure CLI credential, early token refresh and status.

The Azure login service and the Azure CLI cannot run here: a loopback server
answers the token requests, and a fake ``az`` script on ``PATH`` answers
``az account get-access-token`` with the JSON the real CLI prints.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.parse
from pathlib import Path

import pytest
from cloud_fakes import FakeClock, isolate_azure_environment, send_times
from http_helpers import HTTPServer, Request, Response, endpoint, run, secret

from rwconsole.config.schema import AzureADConfig, AzureOAuthConfig, AzureSDKConfig
from rwconsole.http.azuread import AzureADTokenSource
from rwconsole.http.credential_cache import REFRESH_MARGIN
from rwconsole.http.errors import AuthError

pytestmark = pytest.mark.timeout(30)


class _Login:
    """Answers token requests with numbered tokens valid for ``lifetime`` seconds."""

    def __init__(self, lifetime: int = 3599) -> None:
        self.lifetime = lifetime
        self.forms: list[dict[str, str]] = []

    def __call__(self, request: Request) -> Response:
        self.forms.append(dict(urllib.parse.parse_qsl(request.body.decode())))
        payload = {
            "access_token": f"az-token-{len(self.forms)}",
            "expires_in": self.lifetime,
            "token_type": "Bearer",
        }
        return Response(200, [("Content-Type", "application/json")], json.dumps(payload).encode())


@pytest.fixture
def azure_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    isolate_azure_environment(monkeypatch)
    return monkeypatch


def _fake_az(directory: Path, output: dict[str, object] | None, exit_code: int = 0) -> Path:
    """An ``az`` that records its arguments and prints ``output`` (or fails)."""
    script = directory / "az"
    record = directory / "az-args.json"
    stdout = json.dumps(output) if output is not None else ""
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"open({str(record)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
        f"print({stdout!r})\n"
        + (
            f"print(\"ERROR: Please run 'az login' to setup account.\", file=sys.stderr)\n"
            f"sys.exit({exit_code})\n"
            if exit_code
            else ""
        )
    )
    script.chmod(0o755)
    return record


def test_workload_identity_exchanges_the_rotated_federated_token(
    azure_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clock = FakeClock()
    login = _Login()
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text("federated-jwt-1\n")

    async def body() -> None:
        server = await HTTPServer(login).start()
        azure_env.setenv("AZURE_AUTHORITY_HOST", server.url)
        azure_env.setenv("AZURE_CLIENT_ID", "wi-app")
        azure_env.setenv("AZURE_TENANT_ID", "wi-tenant")
        azure_env.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
        source = AzureADTokenSource(AzureADConfig(sdk=AzureSDKConfig()), clock=clock)
        try:
            tokens = [(await source.token()).value]
            token_file.write_text("federated-jwt-2")  # the kubelet rotates the file
            clock.now += 3599 - REFRESH_MARGIN - 20  # not due yet
            tokens.append((await source.token()).value)
            clock.now += 30  # due: five minutes before expiry
            tokens.append((await source.token()).value)
            status = source.credential_status()
        finally:
            await source.aclose()
            await server.aclose()
        assert tokens == ["az-token-1", "az-token-1", "az-token-2"]
        assert [r.target for r in server.requests] == ["/wi-tenant/oauth2/v2.0/token"] * 2
        first, second = login.forms
        assert first == {
            "grant_type": "client_credentials",
            "client_id": "wi-app",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": "federated-jwt-1",
            "scope": "https://monitor.azure.com//.default",
        }
        assert second["client_assertion"] == "federated-jwt-2"
        assert status.source == "workload identity (AZURE_CLIENT_ID wi-app)"
        assert status.expires_at == pytest.approx(clock.now + 3599, abs=2)  # the issuer's expiry

    run(body)


def test_sdk_falls_back_to_the_azure_cli(azure_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    expires_on = 1_900_000_000
    record = _fake_az(
        tmp_path,
        {
            "accessToken": "cli-token",
            "expiresOn": "2030-03-17 17:46:40.000000",
            "expires_on": expires_on,
            "subscription": "sub",
            "tenant": "t-cli",
            "tokenType": "Bearer",
        },
    )
    azure_env.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")

    async def body() -> None:
        receiver = await HTTPServer().start()
        azuread = AzureADConfig(sdk=AzureSDKConfig(tenant_id="t-cli"))
        try:
            results, status = await send_times(endpoint(receiver.url, azuread=azuread))
        finally:
            await receiver.aclose()
        assert [r.outcome for r in results] == ["ok", "ok"]
        assert [r.header("Authorization") for r in receiver.requests] == ["Bearer cli-token"] * 2
        assert json.loads(record.read_text()) == [
            "account",
            "get-access-token",
            "--output",
            "json",
            "--resource",
            "https://monitor.azure.com/",
            "--tenant",
            "t-cli",
        ]
        assert status is not None and status.source.startswith("Azure CLI")
        assert status.expires_at == expires_on

    run(body)


def test_cli_not_signed_in_and_nothing_else_available(
    azure_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async def body() -> None:
        azure_env.setenv("PATH", str(tmp_path))  # no az at all
        missing = AzureADTokenSource(AzureADConfig(sdk=AzureSDKConfig()))
        with pytest.raises(AuthError) as nothing:
            await missing.token()
        await missing.aclose()
        _fake_az(tmp_path, None, exit_code=1)
        logged_out = AzureADTokenSource(AzureADConfig(sdk=AzureSDKConfig()))
        with pytest.raises(AuthError) as not_signed_in:
            await logged_out.token()
        await logged_out.aclose()
        message = str(nothing.value)
        assert message.startswith("azuread.sdk: no credentials")
        assert "IMDS" in message and "'az' is not on PATH" in message
        assert "az login" in str(not_signed_in.value)
        assert logged_out.credential_status().last_error == str(not_signed_in.value)

    run(body)


def test_oauth_token_refreshed_early_and_status_has_no_secret(
    azure_env: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    login = _Login(lifetime=3600)

    async def body() -> None:
        server = await HTTPServer(login).start()
        azure_env.setenv("AZURE_AUTHORITY_HOST", server.url)
        block = AzureADConfig(
            oauth=AzureOAuthConfig(
                client_id="app", client_secret=secret("oauth-secret"), tenant_id="t"
            )
        )
        source = AzureADTokenSource(block, clock=clock)
        try:
            await source.token()
            clock.now += 3600 - REFRESH_MARGIN - 1  # refreshed REFRESH_MARGIN before expiry
            await source.token()
            requests_before = len(server.requests)
            clock.now += 2
            await source.token()
            status = source.credential_status()
        finally:
            await source.aclose()
            await server.aclose()
        assert (requests_before, len(server.requests)) == (1, 2)
        assert status.source == "azuread.oauth client secret (client app)"
        assert "oauth-secret" not in repr(status) and "az-token" not in repr(status)

    run(body)
