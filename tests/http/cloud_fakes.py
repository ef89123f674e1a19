"""Loopback stand-ins for the cloud credential services, a fake clock, a clean environment.

The real EC2 instance metadata service, ECS credentials endpoint, AWS STS and
Azure login cannot run here, so these handlers (for ``http_helpers.HTTPServer``)
speak the documented protocols: IMDSv2 (``PUT /latest/api/token`` with
``X-aws-ec2-metadata-token-ttl-seconds``, then ``GET`` of
``/latest/meta-data/iam/security-credentials/[<role>]`` with
``X-aws-ec2-metadata-token``), the container credentials endpoint (``GET`` with
an ``Authorization`` token) and STS ``AssumeRole``/``AssumeRoleWithWebIdentity``
(form POST, XML answer). Each issues numbered credentials that expire
``lifetime`` seconds after the fake clock's now.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from pathlib import Path

import pytest
from conftest import free_port
from http_helpers import Request, Response

from rwconsole.http.credential_cache import CredentialStatus
from rwconsole.remote.client import RemoteWriteClient, SendResult

AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_STS",
    "AWS_STS_REGIONAL_ENDPOINTS",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
    "AWS_EC2_METADATA_V1_DISABLED",
    "AWS_METADATA_SERVICE_TIMEOUT",
)


AZURE_VARIABLES = (
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_TENANT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
)


def isolate_azure_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Azure settings from the machine; managed identity's IMDS on a closed port."""
    for name in AZURE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", f"http://127.0.0.1:{free_port()}")


async def send_times(
    config: object, times: int = 2
) -> tuple[list[SendResult], CredentialStatus | None]:
    """Send ``times`` requests through a new client; the results and its credential status."""
    client = RemoteWriteClient(config, user_agent="rwconsole-test")
    try:
        results = [await client.send(b"x", protocol=1, attempt=0) for _ in range(times)]
        return results, client.credential_status()
    finally:
        await client.aclose()


def isolate_aws_environment(monkeypatch: pytest.MonkeyPatch, directory: Path) -> None:
    """No AWS settings from the machine; files in ``directory``; IMDS on a closed port."""
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(directory / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(directory / "config"))
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", f"http://127.0.0.1:{free_port()}")


class FakeClock:
    """Wall-clock seconds that move only when a test says so."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def iso(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Issuer:
    """Hands out numbered credentials: key ``<prefix>KEY<n>``, secret, session token."""

    def __init__(self, prefix: str, clock: FakeClock, lifetime: float) -> None:
        self.prefix = prefix
        self.clock = clock
        self.lifetime = lifetime
        self.issued = 0
        self.status = 200  # set to fail the next requests

    def issue(self) -> dict[str, str]:
        self.issued += 1
        n = self.issued
        return {
            "AccessKeyId": f"{self.prefix}KEY{n}",
            "SecretAccessKey": f"{self.prefix.lower()}-secret-{n}",
            "Token": f"{self.prefix.lower()}-session-{n}",
            "Expiration": iso(self.clock() + self.lifetime),
        }


def _json(payload: object, status: int = 200) -> Response:
    return Response(status, [("Content-Type", "application/json")], json.dumps(payload).encode())


class FakeIMDS(_Issuer):
    """EC2 instance metadata, IMDSv2 (or, with ``v2=False``, an IMDSv1-only service)."""

    SESSION = "imds-v2-session-token"

    def __init__(self, clock: FakeClock, *, lifetime: float = 6 * 3600, v2: bool = True):
        super().__init__("IMDS", clock, lifetime)
        self.v2 = v2
        self.role = "rw-instance-role"

    def __call__(self, request: Request) -> Response:
        if self.status != 200:
            return Response(self.status, body=b"metadata service trouble")
        if request.target == "/latest/api/token":
            if not self.v2:
                return Response(404)
            if request.method != "PUT" or not request.header(
                "X-aws-ec2-metadata-token-ttl-seconds"
            ):
                return Response(400)
            return Response(200, body=self.SESSION.encode())
        if self.v2 and request.header("X-aws-ec2-metadata-token") != self.SESSION:
            return Response(401)
        base = "/latest/meta-data/iam/security-credentials/"
        if request.method == "GET" and request.target == base:
            return Response(200, body=self.role.encode())
        if request.method == "GET" and request.target == base + self.role:
            payload = {"Code": "Success", "Type": "AWS-HMAC", **self.issue()}
            return _json(payload)
        return Response(400)


class FakeContainerEndpoint(_Issuer):
    """The ECS/EKS container credentials endpoint; requires ``Authorization: <token>``."""

    def __init__(self, clock: FakeClock, token: str, *, lifetime: float = 3600):
        super().__init__("ECS", clock, lifetime)
        self.token = token

    def __call__(self, request: Request) -> Response:
        if request.header("Authorization") != self.token:
            return _json({"code": "AccessDenied", "message": "bad token"}, 403)
        if self.status != 200:
            return Response(self.status)
        return _json({**self.issue(), "RoleArn": "arn:aws:iam::123456789012:role/task"})


class FakeSTS(_Issuer):
    """STS AssumeRole and AssumeRoleWithWebIdentity (form POST, XML answers)."""

    def __init__(self, clock: FakeClock, *, lifetime: float = 3600) -> None:
        super().__init__("STS", clock, lifetime)
        self.forms: list[dict[str, str]] = []

    def __call__(self, request: Request) -> Response:
        form = dict(urllib.parse.parse_qsl(request.body.decode()))
        self.forms.append(form)
        action = form.get("Action", "")
        if self.status != 200 or form.get("Version") != "2011-06-15":
            error = (
                '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
                "<Code>AccessDenied</Code><Message>Not authorized to perform "
                "sts:AssumeRoleWithWebIdentity</Message></Error></ErrorResponse>"
            )
            return Response(self.status if self.status != 200 else 400, body=error.encode())
        issued = self.issue()
        body = (
            f'<{action}Response xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            f"<{action}Result><Credentials>"
            f"<AccessKeyId>{issued['AccessKeyId']}</AccessKeyId>"
            f"<SecretAccessKey>{issued['SecretAccessKey']}</SecretAccessKey>"
            f"<SessionToken>{issued['Token']}</SessionToken>"
            f"<Expiration>{issued['Expiration']}</Expiration>"
            f"</Credentials></{action}Result></{action}Response>"
        )
        return Response(200, [("Content-Type", "text/xml")], body.encode())
