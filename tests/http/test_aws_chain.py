"""The AWS default credential chain, driven as the platforms set it up.

EC2 instance metadata, the ECS credentials endpoint and STS cannot run here:
loopback servers from ``cloud_fakes`` speak their documented protocols, and
the environment variables and files are set as EC2, ECS, EKS and the AWS CLI
set them. Every remote-write request is checked with an independent SigV4
verifier; expiry and refresh run on a fake clock.
"""

from __future__ import annotations

import logging
import sys
import urllib.parse
from pathlib import Path

import httpx
import pytest
from cloud_fakes import (
    FakeClock,
    FakeContainerEndpoint,
    FakeIMDS,
    FakeSTS,
    iso,
    isolate_aws_environment,
    send_times,
)
from http_helpers import HTTPServer, Request, endpoint, run, secret
from sigv4_verifier import verify_sigv4

from rwconsole.config.schema import SigV4Config
from rwconsole.http.aws_credentials import container_url
from rwconsole.http.credential_cache import BACKOFF_FIRST, REFRESH_MARGIN
from rwconsole.http.errors import AuthError
from rwconsole.http.sigv4 import SigV4Signer
from rwconsole.tui.screens.endpoints import credentials_markup

pytestmark = pytest.mark.timeout(30)
ROLE = "arn:aws:iam::123456789012:role/remote-write"


@pytest.fixture
def aws_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    isolate_aws_environment(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    return monkeypatch


def _access_key(request: Request, secret_key: str) -> str:
    return verify_sigv4(request, secret_key)["access_key"]


async def _sign(signer: SigV4Signer) -> httpx.Request:
    request = httpx.Request("POST", "https://aps-workspaces.example/api/v1/remote_write")
    request.read()
    await signer.sign(request)
    return request


async def _signing_error(config: SigV4Config) -> str:
    """The ``AuthError`` message of signing with ``config`` (fails if signing works)."""
    signer = SigV4Signer(config)
    try:
        with pytest.raises(AuthError) as caught:
            await _sign(signer)
    finally:
        await signer.aclose()
    return str(caught.value)


def _key_of(request: httpx.Request) -> str:
    credential = request.headers["Authorization"].split("Credential=", 1)[1]
    return credential.split("/", 1)[0]


def test_instance_role_through_imdsv2(aws_env: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    imds = FakeIMDS(clock)

    async def body() -> None:
        metadata = await HTTPServer(imds).start()
        receiver = await HTTPServer().start()
        aws_env.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", metadata.url)
        try:
            results, status = await send_times(endpoint(receiver.url, sigv4=SigV4Config()), 3)
        finally:
            await receiver.aclose()
            await metadata.aclose()
        assert [r.outcome for r in results] == ["ok"] * 3
        # One token, one role listing, one credentials request: cached afterwards.
        assert [(r.method, r.target) for r in metadata.requests] == [
            ("PUT", "/latest/api/token"),
            ("GET", "/latest/meta-data/iam/security-credentials/"),
            ("GET", "/latest/meta-data/iam/security-credentials/rw-instance-role"),
        ]
        assert metadata.requests[0].header("X-aws-ec2-metadata-token-ttl-seconds") == "21600"
        for request in receiver.requests:
            assert _access_key(request, "imds-secret-1") == "IMDSKEY1"
            assert request.header("X-Amz-Security-Token") == "imds-session-1"
        assert status is not None and status.source == "EC2 instance role rw-instance-role"
        assert status.last_error is None and status.expires_at is not None

    run(body)


def test_imdsv1_fallback_is_off_unless_allowed(aws_env: pytest.MonkeyPatch) -> None:
    imds = FakeIMDS(FakeClock(), v2=False)

    async def body() -> None:
        metadata = await HTTPServer(imds).start()
        aws_env.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", metadata.url)
        try:
            refused = SigV4Signer(SigV4Config())
            with pytest.raises(AuthError, match="IMDSv1 fallback is off"):
                await _sign(refused)
            await refused.aclose()
            assert [r.method for r in metadata.requests] == ["PUT"]
            aws_env.setenv("AWS_EC2_METADATA_V1_DISABLED", "false")
            allowed = SigV4Signer(SigV4Config())
            signed = await _sign(allowed)
            await allowed.aclose()
        finally:
            await metadata.aclose()
        assert _key_of(signed) == "IMDSKEY1"
        assert all(r.header("X-aws-ec2-metadata-token") is None for r in metadata.requests)

    run(body)


def test_container_credentials_with_a_rotated_token_file(
    aws_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clock = FakeClock()
    ecs = FakeContainerEndpoint(clock, "token-one", lifetime=3600)
    token_file = tmp_path / "eks-pod-identity-token"
    token_file.write_text("token-one\n")

    async def body() -> None:
        agent = await HTTPServer(ecs).start()
        aws_env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", agent.url + "/v1/credentials")
        aws_env.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(token_file))
        aws_env.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "ignored-when-a-file-is-set")
        signer = SigV4Signer(SigV4Config(), clock=clock)
        try:
            first = await _sign(signer)
            # The agent rotates the token; the next refresh reads the file again.
            token_file.write_text("token-two")
            ecs.token = "token-two"
            clock.now += 3600 - REFRESH_MARGIN + 1
            second = await _sign(signer)
            status = signer.credential_status()
        finally:
            await signer.aclose()
            await agent.aclose()
        assert (_key_of(first), _key_of(second)) == ("ECSKEY1", "ECSKEY2")
        assert [r.header("Authorization") for r in agent.requests] == ["token-one", "token-two"]
        assert [r.target for r in agent.requests] == ["/v1/credentials"] * 2
        assert status.source.startswith("container credentials")
        assert status.expires_at == pytest.approx(clock.now + 3600)

    run(body)


def test_container_uri_rules(aws_env: pytest.MonkeyPatch) -> None:
    env = {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/abc"}
    assert container_url(env) == "http://169.254.170.2/v2/credentials/abc"
    for allowed in ("http://127.0.0.1:51679/creds", "http://169.254.170.23/v1/credentials",
                    "https://creds.example/x"):  # fmt: skip
        assert container_url({"AWS_CONTAINER_CREDENTIALS_FULL_URI": allowed}) == allowed
    with pytest.raises(AuthError, match="must use https"):
        container_url({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://10.0.0.8/creds"})
    assert container_url({}) is None


def test_web_identity_then_role_arn_on_top(aws_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clock = FakeClock()
    sts = FakeSTS(clock)
    token_file = tmp_path / "token"
    token_file.write_text("eyJhbGciOiJSUzI1NiJ9.service-account.sig\n")

    async def body() -> None:
        sts_server = await HTTPServer(sts).start()
        receiver = await HTTPServer().start()
        aws_env.setenv("AWS_ENDPOINT_URL_STS", sts_server.url + "/")
        aws_env.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token_file))
        aws_env.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/irsa")
        aws_env.setenv("AWS_ROLE_SESSION_NAME", "pod-1")
        config = SigV4Config(role_arn=ROLE)
        try:
            results, status = await send_times(endpoint(receiver.url, sigv4=config))
        finally:
            await receiver.aclose()
            await sts_server.aclose()
        assert [r.outcome for r in results] == ["ok", "ok"]
        web, assume = sts.forms
        assert web == {
            "Action": "AssumeRoleWithWebIdentity",
            "RoleArn": "arn:aws:iam::123456789012:role/irsa",
            "RoleSessionName": "pod-1",
            "WebIdentityToken": "eyJhbGciOiJSUzI1NiJ9.service-account.sig",
            "Version": "2011-06-15",
        }
        web_request, assume_request = sts_server.requests
        assert web_request.header("Authorization") is None  # not signed
        assert assume["Action"] == "AssumeRole" and assume["RoleArn"] == ROLE
        parts = verify_sigv4(assume_request, "sts-secret-1")
        assert (parts["access_key"], parts["service"], parts["region"]) == (
            "STSKEY1",
            "sts",
            "eu-central-1",
        )
        assert assume_request.header("X-Amz-Security-Token") == "sts-session-1"
        for request in receiver.requests:
            assert _access_key(request, "sts-secret-2") == "STSKEY2"
        assert status is not None
        assert status.source == f"role {ROLE} assumed with web identity (role {web['RoleArn']})"

    run(body)


def test_profile_role_with_source_profile_and_credential_process(
    aws_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clock = FakeClock()
    sts = FakeSTS(clock)
    helper = tmp_path / "helper.py"
    helper.write_text(
        "import json\n"
        "print(json.dumps({'Version': 1, 'AccessKeyId': 'PROCKEY', "
        f"'SecretAccessKey': 'proc-secret', 'SessionToken': 'proc-session', "
        f"'Expiration': '{iso(clock.now + 900)}'}}))\n"
    )
    (tmp_path / "credentials").write_text(
        "[base]\naws_access_key_id = BASEKEY\naws_secret_access_key = base-secret\n"
    )
    (tmp_path / "config").write_text(
        f"[profile app]\nrole_arn = {ROLE}\nsource_profile = base\nexternal_id = ext-7\n"
        "role_session_name = forwarder\n"
        f"[profile proc]\ncredential_process = {sys.executable} {helper}\n"
    )

    async def body() -> None:
        sts_server = await HTTPServer(sts).start()
        aws_env.setenv("AWS_ENDPOINT_URL_STS", sts_server.url)
        app = SigV4Signer(SigV4Config(profile="app"), clock=clock)
        proc = SigV4Signer(SigV4Config(profile="proc"), clock=clock)
        try:
            app_signed = await _sign(app)
            proc_signed = await _sign(proc)
            statuses = app.credential_status(), proc.credential_status()
        finally:
            await app.aclose()
            await proc.aclose()
            await sts_server.aclose()
        (form,) = sts.forms
        assert form["Action"] == "AssumeRole" and form["RoleArn"] == ROLE
        assert form["ExternalId"] == "ext-7" and form["RoleSessionName"] == "forwarder"
        assert _access_key(sts_server.requests[0], "base-secret") == "BASEKEY"
        assert _key_of(app_signed) == "STSKEY1"
        assert _key_of(proc_signed) == "PROCKEY"
        assert proc_signed.headers["X-Amz-Security-Token"] == "proc-session"
        assert (
            statuses[0].source == f"AWS profile 'app' (role {ROLE} assumed with AWS profile 'base')"
        )
        assert statuses[1].source == "AWS profile 'proc' (process)"
        assert statuses[1].expires_at == pytest.approx(clock.now + 900)

    run(body)


def test_chain_order(aws_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    imds = FakeIMDS(FakeClock())
    (tmp_path / "credentials").write_text(
        "[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = file-secret\n"
    )

    async def body() -> None:
        metadata = await HTTPServer(imds).start()
        aws_env.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", metadata.url)
        aws_env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", metadata.url + "/never")
        keys = []
        try:
            for settings, env_keys in [
                (SigV4Config(access_key="CFGKEY", secret_key=secret("cfg")), True),
                (SigV4Config(), True),
                (SigV4Config(), False),
            ]:
                if env_keys:
                    aws_env.setenv("AWS_ACCESS_KEY_ID", "ENVKEY")
                    aws_env.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
                else:
                    aws_env.delenv("AWS_ACCESS_KEY_ID")
                signer = SigV4Signer(settings)
                keys.append(_key_of(await _sign(signer)))
                await signer.aclose()
        finally:
            await metadata.aclose()
        assert keys == ["CFGKEY", "ENVKEY", "FILEKEY"]
        assert metadata.requests == []  # container and instance metadata come last

    run(body)


def test_refresh_before_expiry_then_backoff_on_failure(
    aws_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    imds = FakeIMDS(clock, lifetime=3600)
    caplog.set_level(logging.INFO, logger="rwconsole")

    async def body() -> None:
        metadata = await HTTPServer(imds).start()
        aws_env.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", metadata.url)
        signer = SigV4Signer(SigV4Config(), name="amp", clock=clock)
        keys: list[str] = []
        try:
            keys.append(_key_of(await _sign(signer)))
            clock.now += 3600 - REFRESH_MARGIN - 1  # not yet due: no request
            keys.append(_key_of(await _sign(signer)))
            assert imds.issued == 1
            clock.now += 2  # due: refreshed before expiry
            keys.append(_key_of(await _sign(signer)))
            assert imds.issued == 2
            # The service fails: the current credentials stay in use, with backoff.
            imds.status = 500
            clock.now += 3600 - REFRESH_MARGIN + 1
            keys.append(_key_of(await _sign(signer)))
            failed = len(metadata.requests)
            keys.append(_key_of(await _sign(signer)))
            assert len(metadata.requests) == failed  # within the backoff: not asked again
            status = signer.credential_status()
            assert status.last_error is not None and "HTTP 500" in status.last_error
            # Past expiry without a successful refresh: requests fail with the reason.
            clock.now += REFRESH_MARGIN
            with pytest.raises(AuthError, match="HTTP 500"):
                await _sign(signer)
            imds.status = 200
            clock.now += BACKOFF_FIRST * 8
            keys.append(_key_of(await _sign(signer)))
            recovered = signer.credential_status()
        finally:
            await signer.aclose()
            await metadata.aclose()
        assert keys == ["IMDSKEY1", "IMDSKEY1", "IMDSKEY2", "IMDSKEY2", "IMDSKEY2", "IMDSKEY3"]
        assert recovered.last_error is None
        assert recovered.expires_at == pytest.approx(clock.now + 3600)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert warnings and all(getattr(r, "endpoint", "") == "amp" for r in warnings)
        assert "still using the current credentials" in warnings[0].getMessage()
        text = "\n".join(r.getMessage() for r in caplog.records)
        text += credentials_markup(status, clock.now) + repr(status) + repr(recovered)
        for n in (1, 2, 3):
            assert f"imds-secret-{n}" not in text and f"imds-session-{n}" not in text
        assert FakeIMDS.SESSION not in text

    run(body)


def test_sts_failure_is_recoverable_and_names_the_role(
    aws_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sts = FakeSTS(FakeClock())
    sts.status = 403
    token_file = tmp_path / "token"
    token_file.write_text("web-identity-token-value")

    async def body() -> None:
        sts_server = await HTTPServer(sts).start()
        receiver = await HTTPServer().start()
        aws_env.setenv("AWS_ENDPOINT_URL_STS", sts_server.url)
        aws_env.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token_file))
        aws_env.setenv("AWS_ROLE_ARN", ROLE)
        try:
            (result,), status = await send_times(endpoint(receiver.url, sigv4=SigV4Config()), 1)
        finally:
            await receiver.aclose()
            await sts_server.aclose()
        assert result.outcome == "recoverable"
        assert "AssumeRoleWithWebIdentity" in result.reason and ROLE in result.reason
        assert "Not authorized" in result.reason
        assert "web-identity-token-value" not in result.reason
        assert status is not None and status.source == "" and status.last_error == result.reason
        assert receiver.requests == []

    run(body)


def test_nothing_configured_names_every_source(aws_env: pytest.MonkeyPatch) -> None:
    async def body() -> None:
        message = await _signing_error(SigV4Config())
        assert message.startswith("no AWS credentials")
        for named in ("AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE", "profile 'default'",
                      "AWS_CONTAINER_CREDENTIALS", "EC2 instance metadata"):  # fmt: skip
            assert named in message

    run(body)


def test_regional_sts_endpoints() -> None:
    from rwconsole.http.aws_credentials import sts_url

    assert sts_url({}, "eu-west-1") == "https://sts.eu-west-1.amazonaws.com/"
    assert sts_url({}, "cn-north-1") == "https://sts.cn-north-1.amazonaws.com.cn/"
    legacy = {"AWS_STS_REGIONAL_ENDPOINTS": "legacy"}
    assert sts_url(legacy, "eu-west-1") == "https://sts.amazonaws.com/"
    assert sts_url({"AWS_ENDPOINT_URL_STS": "http://127.0.0.1:1/"}, "x") == "http://127.0.0.1:1/"
    assert urllib.parse.urlsplit(sts_url({}, "us-east-1")).hostname == "sts.us-east-1.amazonaws.com"


def test_malformed_credentials_file_names_file_and_line_not_content(
    aws_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "credentials").write_text(
        "[default]\naws_access_key_id = K\nwJalrXUtnFEMIK7MDENG\n"
    )

    async def body() -> None:
        message = await _signing_error(SigV4Config())
        assert message == f"AWS file {tmp_path / 'credentials'}: line 3 is not 'name = value'"
        assert "wJalr" not in message

    run(body)
