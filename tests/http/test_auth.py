"""Authentication headers byte for byte, rotated secret files, and OAuth2 token caching."""

from __future__ import annotations

import json
import sys
import time
import urllib.parse
from pathlib import Path

import pytest
from http_helpers import (
    HTTPServer,
    Pki,
    Request,
    Response,
    endpoint,
    make_pki,
    run,
    secret,
    server_ssl_context,
)

from rwconsole.config.schema import AuthorizationConfig, BasicAuthConfig, OAuth2Config, TLSConfig
from rwconsole.config.secrets import Secret
from rwconsole.http import oauth2 as oauth2_module
from rwconsole.remote.client import RemoteWriteClient, SendResult

pytestmark = pytest.mark.timeout(30)
UA = "rwconsole-test"


async def _send_all(config: object, count: int = 1) -> tuple[list[SendResult], RemoteWriteClient]:
    client = RemoteWriteClient(config, user_agent=UA)
    try:
        return [await client.send(b"x", protocol=1, attempt=0) for _ in range(count)], client
    finally:
        await client.aclose()


def test_basic_bearer_and_authorization_headers_byte_for_byte() -> None:
    async def body() -> None:
        server = await HTTPServer().start()
        try:
            cases = [
                endpoint(
                    server.url,
                    basic_auth=BasicAuthConfig(username="alice", password=secret("s3cr3t")),
                ),
                endpoint(server.url, bearer_token=secret("tok.en-123")),
                endpoint(
                    server.url,
                    authorization=AuthorizationConfig(type="Splunk", credentials=secret("abc")),
                ),
                endpoint(server.url, authorization=AuthorizationConfig(credentials=secret("d"))),
            ]
            for config in cases:
                results, _ = await _send_all(config)
                assert results[0].outcome == "ok"
        finally:
            await server.aclose()
        assert [r.header("Authorization") for r in server.requests] == [
            "Basic YWxpY2U6czNjcjN0",
            "Bearer tok.en-123",
            "Splunk abc",
            "Bearer d",
        ]

    run(body)


def test_rotated_secret_files_are_picked_up(tmp_path: Path) -> None:
    password = tmp_path / "password"
    credentials = tmp_path / "credentials"
    token = tmp_path / "token"

    async def body() -> None:
        server = await HTTPServer().start()
        basic = RemoteWriteClient(
            endpoint(
                server.url,
                basic_auth=BasicAuthConfig(username="bob", password_file=str(password)),
            ),
            user_agent=UA,
        )
        authz = RemoteWriteClient(
            endpoint(
                server.url, authorization=AuthorizationConfig(credentials_file=str(credentials))
            ),
            user_agent=UA,
        )
        bearer = RemoteWriteClient(
            endpoint(server.url, bearer_token_file=str(token)), user_agent=UA
        )
        try:
            for round_ in ("one", "two"):
                password.write_text(f"pw-{round_}\n")
                credentials.write_text(f"cred-{round_}")
                token.write_text(f"  tok-{round_}  \n")
                for client in (basic, authz, bearer):
                    assert (await client.send(b"x", protocol=1, attempt=0)).outcome == "ok"
        finally:
            for client in (basic, authz, bearer):
                await client.aclose()
            await server.aclose()
        assert [r.header("Authorization") for r in server.requests] == [
            "Basic Ym9iOnB3LW9uZQ==",
            "Bearer cred-one",
            "Bearer tok-one",
            "Basic Ym9iOnB3LXR3bw==",
            "Bearer cred-two",
            "Bearer tok-two",
        ]

    run(body)


def test_unreadable_secret_is_a_recoverable_result_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RWC_TEST_MISSING_TOKEN", raising=False)

    async def body() -> None:
        server = await HTTPServer().start()
        try:
            missing_file, _ = await _send_all(
                endpoint(server.url, bearer_token_file=str(tmp_path / "nope"))
            )
            missing_env, _ = await _send_all(
                endpoint(
                    server.url,
                    bearer_token=Secret.from_env("RWC_TEST_MISSING_TOKEN", key_path="bearer_token"),
                )
            )
        finally:
            await server.aclose()
        assert missing_file[0].outcome == "recoverable" and missing_file[0].status is None
        assert "bearer_token_file" in missing_file[0].reason and "nope" in missing_file[0].reason
        assert missing_env[0].outcome == "recoverable"
        assert "RWC_TEST_MISSING_TOKEN" in missing_env[0].reason
        assert server.requests == []  # nothing was sent without credentials

    run(body)


class TokenServer:
    """An OAuth2 token endpoint issuing numbered tokens that live ``lifetime`` seconds."""

    def __init__(self, lifetime: float, *, status: int = 200) -> None:
        self.lifetime = lifetime
        self.status = status
        self.forms: list[dict[str, str]] = []

    def __call__(self, request: Request) -> Response:
        form = dict(urllib.parse.parse_qsl(request.body.decode()))
        self.forms.append(form)
        if self.status != 200:
            return Response(self.status, body=b'{"error":"invalid_client"}')
        payload = {
            "access_token": f"token-{len(self.forms)}",
            "token_type": "bearer",
            "expires_in": self.lifetime,
        }
        return Response(200, [("Content-Type", "application/json")], json.dumps(payload).encode())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_oauth2_token_reused_until_expiry_then_refreshed(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fake clock: a short real lifetime would have to cover the first sends on a busy
    # machine (they took longer than its 0.9 s of use at times).
    clock = [1000.0]
    # The module that parses token answers (and reads the clock for their lifetime).
    tokens_module = sys.modules[oauth2_module.post_token_form.__module__]
    monkeypatch.setattr(tokens_module, "now_monotonic", lambda: clock[0])
    monkeypatch.setattr(oauth2_module, "now_monotonic", lambda: clock[0])
    tokens = TokenServer(lifetime=60.0)
    secret_file = tmp_path / "client_secret"
    secret_file.write_text("cs-one\n")

    async def body() -> None:
        token_server = await HTTPServer(tokens, ssl_ctx=server_ssl_context(pki)).start()
        receiver = await HTTPServer().start()
        oauth2 = OAuth2Config(
            client_id="rw-client",
            client_secret_file=str(secret_file),
            scopes=["metrics.write", "openid"],
            token_url=token_server.url + "/oauth/token",
            endpoint_params={"audience": "mimir"},
            tls_config=TLSConfig(ca_file=pki.ca_file),  # the token endpoint's own TLS
        )
        client = RemoteWriteClient(endpoint(receiver.url, oauth2=oauth2), user_agent=UA)
        try:
            outcomes = [(await client.send(b"x", protocol=1, attempt=0)).outcome for _ in range(3)]
            assert len(tokens.forms) == 1
            clock[0] += 60.0  # past expiry (and the refresh margin)
            outcomes.append((await client.send(b"x", protocol=1, attempt=0)).outcome)
            assert len(tokens.forms) == 2
            secret_file.write_text("cs-two\n")  # a rotated secret gets a new token at once
            outcomes.append((await client.send(b"x", protocol=1, attempt=0)).outcome)
        finally:
            await client.aclose()
            await receiver.aclose()
            await token_server.aclose()
        assert outcomes == ["ok"] * 5
        assert [r.header("Authorization") for r in receiver.requests] == [
            "Bearer token-1",
            "Bearer token-1",
            "Bearer token-1",
            "Bearer token-2",
            "Bearer token-3",
        ]
        assert tokens.forms[0] == {
            "grant_type": "client_credentials",
            "client_id": "rw-client",
            "client_secret": "cs-one",
            "scope": "metrics.write openid",
            "audience": "mimir",
        }
        assert tokens.forms[2]["client_secret"] == "cs-two"
        assert token_server.requests[0].target == "/oauth/token"

    run(body)


def test_oauth2_token_failure_is_recoverable_and_secret_free() -> None:
    tokens = TokenServer(lifetime=60, status=401)

    async def body() -> None:
        token_server = await HTTPServer(tokens).start()
        receiver = await HTTPServer().start()
        oauth2 = OAuth2Config(
            client_id="rw-client",
            client_secret=secret("super-secret-value"),
            token_url=token_server.url + "/token",
        )
        client = RemoteWriteClient(endpoint(receiver.url, oauth2=oauth2), user_agent=UA)
        try:
            started = time.monotonic()
            result = await client.send(b"x", protocol=1, attempt=0)
            assert time.monotonic() - started < 5
        finally:
            await client.aclose()
            await receiver.aclose()
            await token_server.aclose()
        assert result.outcome == "recoverable" and result.status is None
        assert "oauth2 token" in result.reason and "HTTP 401" in result.reason
        assert "super-secret-value" not in result.reason
        assert "super-secret-value" not in repr(client.state)
        assert receiver.requests == []

    run(body)


def test_receiver_401_drops_the_cached_token() -> None:
    tokens = TokenServer(lifetime=3600)
    statuses = iter([401, 204])

    async def body() -> None:
        token_server = await HTTPServer(tokens).start()
        receiver = await HTTPServer(lambda request: Response(next(statuses))).start()
        oauth2 = OAuth2Config(
            client_id="c", client_secret=secret("s"), token_url=token_server.url + "/token"
        )
        client = RemoteWriteClient(endpoint(receiver.url, oauth2=oauth2), user_agent=UA)
        try:
            first = await client.send(b"x", protocol=1, attempt=0)
            second = await client.send(b"x", protocol=1, attempt=1)
        finally:
            await client.aclose()
            await receiver.aclose()
            await token_server.aclose()
        assert (first.outcome, second.outcome) == ("fatal", "ok")
        assert len(tokens.forms) == 2
        assert receiver.requests[1].header("Authorization") == "Bearer token-2"

    run(body)
