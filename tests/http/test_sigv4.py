"""AWS SigV4: the published test-suite vectors, real signed requests, credentials, AssumeRole."""

from __future__ import annotations

import datetime as dt
import urllib.parse
from pathlib import Path

import pytest
from cloud_fakes import isolate_aws_environment
from http_helpers import HTTPServer, Response, endpoint, run, secret
from sigv4_verifier import verify_sigv4 as _verify

from rwconsole.config.schema import SigV4Config
from rwconsole.http.sigv4 import AWSCredentials, compute_signature
from rwconsole.remote.client import RemoteWriteClient

pytestmark = pytest.mark.timeout(30)
UA = "rwconsole-test"

# AWS's documented example credentials and the test suite's fixed time.
EXAMPLE = AWSCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
SUITE_DATE = "20150830T123600Z"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize(
    ("name", "method", "url", "signature"),
    [
        (
            "get-vanilla",
            "GET",
            "https://example.amazonaws.com/",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
        (
            "post-vanilla",
            "POST",
            "https://example.amazonaws.com/",
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        ),
        (
            "get-vanilla-query-order-key-case",
            "GET",
            "https://example.amazonaws.com/?Param2=value2&Param1=value1",
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        ),
    ],
)
def test_aws_test_suite_vectors(name: str, method: str, url: str, signature: str) -> None:
    headers = [("Host", "example.amazonaws.com"), ("X-Amz-Date", SUITE_DATE)]
    result = compute_signature(
        method, url, headers, EMPTY_SHA256, EXAMPLE, "us-east-1", "service", SUITE_DATE
    )
    assert result.authorization == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={signature}"
    )
    if name == "get-vanilla":
        assert result.canonical_request == (
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
            f"host;x-amz-date\n{EMPTY_SHA256}"
        )
        assert result.string_to_sign == (
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        )


@pytest.fixture
def aws_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    isolate_aws_environment(monkeypatch, tmp_path)
    return tmp_path


def test_signed_remote_write_request_verifies(aws_env: Path) -> None:
    async def body() -> None:
        server = await HTTPServer().start()
        config = endpoint(
            server.url + "/workspaces/ws-1/api/v1/remote_write",
            sigv4=SigV4Config(region="eu-west-1", access_key="AKIDSTATIC", secret_key=secret("sk")),
            headers={"X-Extra": secret("v")},
        )
        client = RemoteWriteClient(config, user_agent=UA)
        try:
            result = await client.send(b"\x00snappy", protocol=2, attempt=1, items=0)
        finally:
            await client.aclose()
            await server.aclose()
        assert result.outcome == "ok"
        (request,) = server.requests
        parts = _verify(request, "sk")
        assert (parts["access_key"], parts["region"], parts["service"]) == (
            "AKIDSTATIC",
            "eu-west-1",
            "aps",
        )
        signed = parts["signed"]
        for name in ("host", "x-amz-date", "content-type", "content-encoding", "x-extra"):
            assert name in signed
        assert "user-agent" not in signed and "authorization" not in signed
        assert request.header("X-Amz-Security-Token") is None
        stamp = dt.datetime.strptime(request.header("X-Amz-Date") or "", "%Y%m%dT%H%M%SZ")
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        assert abs((now - stamp).total_seconds()) < 60

    run(body)


def test_credentials_from_environment_and_profile(
    aws_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (aws_env / "credentials").write_text(
        "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = sk-default\n"
        "[team]\naws_access_key_id = AKIDTEAM\naws_secret_access_key = sk-team\n"
        "aws_session_token = team-session\n"
    )
    (aws_env / "config").write_text("[profile team]\nregion = ap-south-1\n")

    async def body() -> None:
        server = await HTTPServer().start()
        try:
            profile_client = RemoteWriteClient(
                endpoint(server.url, sigv4=SigV4Config(profile="team")), user_agent=UA
            )
            await profile_client.send(b"a", protocol=1, attempt=0)
            await profile_client.aclose()
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sk-env")
            monkeypatch.setenv("AWS_SESSION_TOKEN", "env-session")
            monkeypatch.setenv("AWS_REGION", "us-west-2")
            env_client = RemoteWriteClient(endpoint(server.url, sigv4=SigV4Config()), user_agent=UA)
            await env_client.send(b"b", protocol=1, attempt=0)
            await env_client.aclose()
        finally:
            await server.aclose()
        team, env = server.requests
        assert _verify(team, "sk-team")["access_key"] == "AKIDTEAM"
        assert _verify(team, "sk-team")["region"] == "ap-south-1"
        assert team.header("X-Amz-Security-Token") == "team-session"
        assert "x-amz-security-token" in _verify(team, "sk-team")["signed"]
        assert _verify(env, "sk-env")["access_key"] == "AKIDENV"
        assert _verify(env, "sk-env")["region"] == "us-west-2"
        assert env.header("X-Amz-Security-Token") == "env-session"

    run(body)


def test_missing_credentials_or_region_is_recoverable(aws_env: Path) -> None:
    async def body() -> None:
        server = await HTTPServer().start()
        client = RemoteWriteClient(
            endpoint(server.url, sigv4=SigV4Config(region="eu-west-1")), user_agent=UA
        )
        no_region = RemoteWriteClient(
            endpoint(server.url, sigv4=SigV4Config(access_key="A", secret_key=secret("s"))),
            user_agent=UA,
        )
        try:
            result = await client.send(b"x", protocol=1, attempt=0)
            region_result = await no_region.send(b"x", protocol=1, attempt=0)
        finally:
            await client.aclose()
            await no_region.aclose()
            await server.aclose()
        assert result.outcome == "recoverable" and "no AWS credentials" in result.reason
        assert region_result.outcome == "recoverable" and "sigv4.region" in region_result.reason
        assert server.requests == []

    run(body)


def test_role_arn_assumed_through_sts_once(aws_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expiration = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    sts_reply = (
        '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        "<AssumeRoleResult><Credentials><AccessKeyId>ASIATEMP</AccessKeyId>"
        "<SecretAccessKey>temp-secret</SecretAccessKey><SessionToken>temp-session</SessionToken>"
        f"<Expiration>{expiration}</Expiration></Credentials></AssumeRoleResult>"
        "</AssumeRoleResponse>"
    ).encode()

    async def body() -> None:
        sts = await HTTPServer(lambda request: Response(200, body=sts_reply)).start()
        server = await HTTPServer().start()
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sts.url + "/")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDBASE")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sk-base")
        role = "arn:aws:iam::123456789012:role/remote-write"
        client = RemoteWriteClient(
            endpoint(server.url, sigv4=SigV4Config(region="us-east-2", role_arn=role)),
            user_agent=UA,
        )
        try:
            results = [await client.send(b"x", protocol=1, attempt=0) for _ in range(2)]
        finally:
            await client.aclose()
            await server.aclose()
            await sts.aclose()
        assert [r.outcome for r in results] == ["ok", "ok"]
        (assume,) = sts.requests  # cached for the second request
        sts_parts = _verify(assume, "sk-base")
        assert (sts_parts["access_key"], sts_parts["service"]) == ("AKIDBASE", "sts")
        form = dict(urllib.parse.parse_qsl(assume.body.decode()))
        assert form["Action"] == "AssumeRole" and form["RoleArn"] == role
        assert form["Version"] == "2011-06-15" and form["RoleSessionName"]
        for request in server.requests:
            parts = _verify(request, "temp-secret")
            assert (parts["access_key"], parts["region"]) == ("ASIATEMP", "us-east-2")
            assert request.header("X-Amz-Security-Token") == "temp-session"

    run(body)
