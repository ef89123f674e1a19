"""The AWS default credential chain for one ``sigv4`` block.

Owns the order in which credential sources are asked. The first source that
is configured answers; if it fails, that failure is the error (later sources
are not tried), except the last one, EC2 instance metadata, whose absence
ends the chain with a message naming everything that was looked at:

1. ``access_key``/``secret_key`` of the block;
2. the block's ``profile`` when one is named there (a profile chosen in the
   configuration wins over the environment, as in the AWS SDKs when a
   profile is chosen in code);
3. ``AWS_ACCESS_KEY_ID`` + ``AWS_SECRET_ACCESS_KEY`` [+ ``AWS_SESSION_TOKEN``];
4. web identity (EKS IRSA): ``AWS_WEB_IDENTITY_TOKEN_FILE`` + ``AWS_ROLE_ARN``
   [+ ``AWS_ROLE_SESSION_NAME``] through STS ``AssumeRoleWithWebIdentity``;
5. the shared config and credentials files (``AWS_CONFIG_FILE``,
   ``AWS_SHARED_CREDENTIALS_FILE``), profile ``AWS_PROFILE`` or ``default``:
   ``role_arn`` with ``source_profile`` (chains allowed), ``credential_source``
   (``Environment``, ``Ec2InstanceMetadata``, ``EcsContainer``) or
   ``web_identity_token_file`` [+ ``role_session_name``, ``external_id``,
   ``duration_seconds``]; static keys; ``credential_process``;
6. container credentials (ECS task role, EKS Pod Identity);
7. EC2 instance metadata (the instance role).

``role_arn`` on the block then assumes that role with whichever base
credentials were found. Base and assumed credentials are cached and refreshed
early (``credential_cache``); sources without expiry (keys in files or the
environment) are read again every minute, so rotated keys are picked up.
"""

from __future__ import annotations

import configparser
import json
import os
import shlex
import time
from collections.abc import Callable, Mapping

import httpx

from rwconsole.http.aws_credentials import (
    AWSCredentials,
    Signer,
    assume_role,
    container_credentials,
    container_url,
    imds_credentials,
    imds_enabled,
    metadata_client,
    read_web_identity_token,
    sts_client,
    sts_url,
    web_identity_form,
)
from rwconsole.http.credential_cache import (
    Clock,
    CredentialStatus,
    Fetched,
    RefreshingCredential,
    parse_expiry,
    run_credential_command,
)
from rwconsole.http.errors import AuthError
from rwconsole.http.options import opt, reveal

MAX_PROFILE_HOPS = 5
_ROLE_OPTIONS = (("external_id", "ExternalId"), ("duration_seconds", "DurationSeconds"))


class AWSCredentialChain:
    """Finds, caches and refreshes the credentials of one ``sigv4`` block."""

    def __init__(
        self,
        block: object,
        *,
        region: Callable[[], str],
        sign: Signer,
        environ: Mapping[str, str] | None = None,
        label: str = "",
        clock: Clock = time.time,
    ) -> None:
        self._block = block
        self._region = region
        self._sign = sign
        self._environ = environ
        self._clock = clock
        self._role_arn: str = opt(block, "role_arn", "")
        self._base = RefreshingCredential(
            self._resolve, label=label, clock=clock, logged=not self._role_arn
        )
        self._assumed = (
            RefreshingCredential(self._assume, label=label, clock=clock) if self._role_arn else None
        )
        self._metadata: httpx.AsyncClient | None = None
        self._sts: httpx.AsyncClient | None = None

    @property
    def _env(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    @property
    def _cache(self) -> RefreshingCredential[AWSCredentials]:
        return self._assumed or self._base

    async def get(self) -> AWSCredentials:
        return await self._cache.get()

    def status(self) -> CredentialStatus:
        return self._cache.status()

    def invalidate(self) -> None:
        self._base.invalidate()
        if self._assumed is not None:
            self._assumed.invalidate()

    def profile_name(self) -> str:
        return opt(self._block, "profile", "") or self._env.get("AWS_PROFILE", "") or "default"

    def config_file(self) -> str:
        return self._env.get("AWS_CONFIG_FILE") or os.path.expanduser("~/.aws/config")

    def credentials_file(self) -> str:
        return self._env.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.expanduser(
            "~/.aws/credentials"
        )

    def profile_region(self) -> str:
        return profile_section(self.config_file(), self.profile_name(), True).get("region", "")

    async def aclose(self) -> None:
        for client in (self._metadata, self._sts):
            if client is not None:
                await client.aclose()
        self._metadata = self._sts = None

    # ---- the chain ----------------------------------------------------------------------

    async def _resolve(self) -> Fetched[AWSCredentials]:
        explicit = self._explicit()
        if explicit is not None:
            return explicit
        named = bool(opt(self._block, "profile", ""))
        if named:
            found = await self._profile(self.profile_name(), 0)
            if found is not None:
                return found
        found = self._environment()
        if found is None:
            found = await self._env_web_identity()
        if found is None and not named:
            found = await self._profile(self.profile_name(), 0)
        if found is None:
            found = await self._container()
        if found is not None:
            return found
        return await self._instance_metadata()

    def _explicit(self) -> Fetched[AWSCredentials] | None:
        access_key = opt(self._block, "access_key", "")
        secret_key = reveal(opt(self._block, "secret_key")) or ""
        if not (access_key or secret_key):
            return None
        if not (access_key and secret_key):
            missing = "sigv4.secret_key" if access_key else "sigv4.access_key"
            raise AuthError(f"{missing} is not set (sigv4 needs both access_key and secret_key)")
        return Fetched(AWSCredentials(access_key, secret_key), "sigv4 access_key/secret_key")

    def _environment(self) -> Fetched[AWSCredentials] | None:
        key = self._env.get("AWS_ACCESS_KEY_ID", "")
        secret = self._env.get("AWS_SECRET_ACCESS_KEY", "")
        if not (key and secret):
            return None
        token = self._env.get("AWS_SESSION_TOKEN", "")
        return Fetched(AWSCredentials(key, secret, token), "environment (AWS_ACCESS_KEY_ID)")

    async def _env_web_identity(self) -> Fetched[AWSCredentials] | None:
        token_file = self._env.get("AWS_WEB_IDENTITY_TOKEN_FILE", "")
        role_arn = self._env.get("AWS_ROLE_ARN", "")
        if not (token_file and role_arn):
            return None
        session = self._env.get("AWS_ROLE_SESSION_NAME", "")
        return await self._web_identity(
            role_arn, token_file, session, "AWS_WEB_IDENTITY_TOKEN_FILE"
        )

    async def _web_identity(
        self, role_arn: str, token_file: str, session: str, key: str
    ) -> Fetched[AWSCredentials]:
        token = read_web_identity_token(token_file, key)
        form = web_identity_form(role_arn, session or self._session_name(), token)
        credentials, expiry = await self._sts_call(form)
        return Fetched(credentials, f"web identity (role {role_arn})", expiry)

    async def _container(self) -> Fetched[AWSCredentials] | None:
        url = container_url(self._env)
        if url is None:
            return None
        return await container_credentials(self._metadata_client(), self._env, url)

    async def _instance_metadata(self) -> Fetched[AWSCredentials]:
        if imds_enabled(self._env):
            try:
                return await imds_credentials(self._metadata_client(), self._env)
            except AuthError as exc:
                last = str(exc)
        else:
            last = "EC2 instance metadata is disabled (AWS_EC2_METADATA_DISABLED)"
        raise AuthError(
            "no AWS credentials: sigv4.access_key/secret_key are not set, "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not set, no web identity "
            f"(AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN), profile {self.profile_name()!r} "
            f"has no credentials in {self.credentials_file()} or {self.config_file()}, no "
            f"container credentials (AWS_CONTAINER_CREDENTIALS_*_URI); {last}"
        )

    async def _assume(self) -> Fetched[AWSCredentials]:
        base = await self._base.current()
        form = {
            "Action": "AssumeRole",
            "RoleArn": self._role_arn,
            "RoleSessionName": self._session_name(),
        }
        credentials, expiry = await self._sts_call(form, base.value)
        return Fetched(credentials, f"role {self._role_arn} assumed with {base.source}", expiry)

    # ---- shared config and credentials files ---------------------------------------------

    def _settings(self, name: str) -> dict[str, str]:
        """A profile's settings: the config file's, overridden by the credentials file's."""
        settings = profile_section(self.config_file(), name, True)
        return settings | profile_section(self.credentials_file(), name, False)

    async def _profile(self, name: str, hops: int) -> Fetched[AWSCredentials] | None:
        settings = self._settings(name)
        role_arn = settings.get("role_arn", "")
        if role_arn:
            if hops >= MAX_PROFILE_HOPS:
                raise AuthError(
                    f"AWS profile {name!r}: source_profile chain is longer than "
                    f"{MAX_PROFILE_HOPS} profiles or loops"
                )
            return await self._profile_role(name, settings, role_arn, hops)
        static = _static_keys(settings)
        if static is not None:
            return Fetched(static, f"AWS profile {name!r}")
        process = settings.get("credential_process", "")
        if process:
            return await self._credential_process(name, process)
        return None

    async def _profile_role(
        self, name: str, settings: dict[str, str], role_arn: str, hops: int
    ) -> Fetched[AWSCredentials]:
        session = settings.get("role_session_name", "")
        token_file = settings.get("web_identity_token_file", "")
        if token_file:
            key = f"AWS profile {name!r} web_identity_token_file"
            return await self._web_identity(role_arn, token_file, session, key)
        base = await self._role_source(name, settings, hops)
        form = {
            "Action": "AssumeRole",
            "RoleArn": role_arn,
            "RoleSessionName": session or self._session_name(),
        }
        for setting, parameter in _ROLE_OPTIONS:
            if settings.get(setting):
                form[parameter] = settings[setting]
        credentials, expiry = await self._sts_call(form, base.value)
        source = f"AWS profile {name!r} (role {role_arn} assumed with {base.source})"
        return Fetched(credentials, source, expiry)

    async def _role_source(
        self, name: str, settings: dict[str, str], hops: int
    ) -> Fetched[AWSCredentials]:
        source_profile = settings.get("source_profile", "")
        credential_source = settings.get("credential_source", "")
        if source_profile and credential_source:
            raise AuthError(f"AWS profile {name!r} sets both source_profile and credential_source")
        found: Fetched[AWSCredentials] | None = None
        if source_profile == name:
            static = _static_keys(settings)
            found = Fetched(static, f"AWS profile {name!r}") if static else None
        elif source_profile:
            found = await self._profile(source_profile, hops + 1)
        elif credential_source == "Environment":
            found = self._environment()
        elif credential_source == "EcsContainer":
            found = await self._container()
        elif credential_source == "Ec2InstanceMetadata":
            found = await imds_credentials(self._metadata_client(), self._env)
        elif credential_source:
            raise AuthError(
                f"AWS profile {name!r}: credential_source {credential_source!r} is not one of "
                "Environment, Ec2InstanceMetadata, EcsContainer"
            )
        else:
            raise AuthError(
                f"AWS profile {name!r} has role_arn but no source_profile or credential_source"
            )
        if found is None:
            what = f"source_profile {source_profile!r}" if source_profile else credential_source
            raise AuthError(f"AWS profile {name!r}: {what} has no credentials")
        return found

    async def _credential_process(self, name: str, command: str) -> Fetched[AWSCredentials]:
        what = f"AWS profile {name!r} credential_process"
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise AuthError(f"{what}: cannot split the command line: {exc}") from None
        if not argv:
            raise AuthError(f"{what} is empty")
        output = await run_credential_command(argv, what=what, env=self._env)
        try:
            payload = json.loads(output)
        except ValueError:
            raise AuthError(f"{what}: the output is not JSON") from None
        if not isinstance(payload, dict) or payload.get("Version") != 1:
            raise AuthError(f"{what}: the output is not a JSON object with Version 1")
        key, secret = payload.get("AccessKeyId"), payload.get("SecretAccessKey")
        if not (isinstance(key, str) and isinstance(secret, str) and key and secret):
            raise AuthError(f"{what}: no AccessKeyId/SecretAccessKey in the output")
        token = str(payload.get("SessionToken") or "")
        expiry = parse_expiry(str(payload.get("Expiration") or ""), f"{what}: Expiration")
        return Fetched(
            AWSCredentials(key, secret, token), f"AWS profile {name!r} (process)", expiry
        )

    # ---- HTTP ----------------------------------------------------------------------------

    async def _sts_call(
        self, form: dict[str, str], base: AWSCredentials | None = None
    ) -> tuple[AWSCredentials, float | None]:
        region = self._region()
        if self._sts is None:
            self._sts = sts_client()
        return await assume_role(
            self._sts, sts_url(self._env, region), form, region=region, base=base, sign=self._sign
        )

    def _metadata_client(self) -> httpx.AsyncClient:
        if self._metadata is None:
            self._metadata = metadata_client()
        return self._metadata

    def _session_name(self) -> str:
        return f"rwconsole-{int(self._clock())}"


def _static_keys(settings: dict[str, str]) -> AWSCredentials | None:
    key = settings.get("aws_access_key_id", "")
    secret = settings.get("aws_secret_access_key", "")
    if not (key and secret):
        return None
    return AWSCredentials(key, secret, settings.get("aws_session_token", ""))


_parsed_files: dict[str, tuple[int, configparser.RawConfigParser]] = {}


def profile_section(path: str, profile: str, config_file: bool) -> dict[str, str]:
    """One profile's settings; a file is parsed again only when it changed.

    Raises ``AuthError`` naming the file and line when it is not an INI file.
    """
    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError:
        return {}
    cached = _parsed_files.get(path)
    if cached is None or cached[0] != stamp:
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise AuthError(f"AWS file {path}: not UTF-8 (byte offset {exc.start})") from None
        except configparser.Error as exc:
            # The parser's own message quotes the bad line, which may hold a key.
            raise AuthError(f"AWS file {path}: {_parse_problem(exc)}") from None
        cached = _parsed_files[path] = (stamp, parser)
    parser = cached[1]
    section = profile if not config_file or profile == "default" else f"profile {profile}"
    if not parser.has_section(section):
        return {}
    return {k: v.strip() for k, v in parser.items(section)}


def _parse_problem(exc: configparser.Error) -> str:
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return f"line {exc.lineno} comes before any [section] header"
    if isinstance(exc, configparser.ParsingError) and exc.errors:
        return f"line {exc.errors[0][0]} is not 'name = value'"
    if isinstance(exc, configparser.DuplicateSectionError | configparser.DuplicateOptionError):
        return f"{type(exc).__name__} at line {exc.lineno}"
    return type(exc).__name__
