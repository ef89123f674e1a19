"""Validation rules for a built ``Config``: Alloy's documented rules plus Prometheus'.

Each rule appends a ``Problem`` naming the key path; nothing stops at the first
problem. Warnings (valid but probably unintended, e.g. no endpoint) are
returned separately by ``warnings``. ``check_secret_references`` resolves
``{ env = … }`` / ``{ file = … }`` secrets once to report missing ones early.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Iterator
from dataclasses import fields, is_dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from rwconsole.config import schema
from rwconsole.config.discovery import check_service_discovery, has_discovery
from rwconsole.config.durations import format_duration as _dur
from rwconsole.config.errors import KeyPath, Problem
from rwconsole.config.secrets import Secret, SecretError, redact_url
from rwconsole.config.sizes import format_size
from rwconsole.labels import is_valid_label_name
from rwconsole.relabel import check_rule

T = TypeVar("T")

# Prometheus rejects these header names in remote-write `headers` (case-insensitive);
# `authorization` must be configured through an auth block instead.
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-encoding",
        "content-length",
        "content-type",
        "user-agent",
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "www-authenticate",
        "accept-encoding",
        "x-prometheus-remote-write-version",
        "x-prometheus-remote-read-version",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-content-sha256",
    }
)
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_TENANT_ID = re.compile(r"^[0-9a-zA-Z.-]+$")
_WAL_MIN_SEGMENT = 2 * schema.WAL_PAGE_SIZE
_WAL_MAX_SEGMENT = 256 * 1024 * 1024


def validate(config: schema.Config) -> list[Problem]:
    """Every rule violation in ``config``."""
    v = _Validator()
    v.config(config)
    return v.problems


def warnings(config: schema.Config) -> list[Problem]:
    """Things that are valid but worth telling the user."""
    found: list[Problem] = []
    if not config.endpoint:
        found.append(Problem(("endpoint",), "no endpoint is configured: nothing will be sent"))
    if not config.has_source():
        found.append(
            Problem(
                (),
                "no source ([[scrape]], [receiver] or [synthetic]) is configured: "
                "only data already in the WAL will be sent",
            )
        )
    for index, endpoint in enumerate(config.endpoint):
        if endpoint.tls_config.insecure_skip_verify:
            found.append(
                Problem(
                    ("endpoint", index, "tls_config", "insecure_skip_verify"),
                    "server certificates are not verified",
                )
            )
    return found


def queue_config_problems(queue_config: schema.QueueConfig) -> list[Problem]:
    """The queue_config rules alone (for live edits), paths relative to queue_config."""
    validator = _Validator()
    validator.queue(queue_config, ())
    return validator.problems


def check_secret_references(config: schema.Config) -> list[Problem]:
    """A problem for every env/file secret that cannot be resolved now."""
    problems: list[Problem] = []
    for path, secret in iter_secrets(config):
        if secret.kind == "value":
            continue
        try:
            secret.reveal()
        except SecretError as exc:
            message = str(exc).removeprefix(f"{secret.key_path}: ")
            problems.append(Problem(path, message))
    return problems


def iter_secrets(value: Any, path: KeyPath = ()) -> Iterator[tuple[KeyPath, Secret]]:
    """Every ``Secret`` inside a config object, with its key path."""
    return iter_instances(value, Secret, path)


def iter_instances(value: Any, kind: type[T], path: KeyPath = ()) -> Iterator[tuple[KeyPath, T]]:
    """Every ``kind`` object inside a config object, with its key path."""
    if isinstance(value, kind):
        yield path, value
    elif is_dataclass(value) and not isinstance(value, type):
        for f in fields(value):
            yield from iter_instances(getattr(value, f.name), kind, (*path, f.name))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from iter_instances(item, kind, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from iter_instances(item, kind, (*path, index))


class _Validator:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, path: KeyPath, message: str) -> None:
        self.problems.append(Problem(path, message))

    # --- top level ---------------------------------------------------------------------

    def config(self, c: schema.Config) -> None:
        self.labels(c.external_labels, ("external_labels",))
        names: dict[str, int] = {}
        for index, endpoint in enumerate(c.endpoint):
            path: KeyPath = ("endpoint", index)
            self.endpoint(endpoint, path)
            queue = endpoint.queue_name()
            if queue in names:
                other = names[queue]
                if endpoint.name:
                    self.add(
                        (*path, "name"), f"duplicate endpoint name {queue!r} (endpoint[{other}])"
                    )
                else:
                    self.add(
                        path,
                        f"same settings as endpoint[{other}] for identity (url and "
                        "protobuf_message); give each a distinct name",
                    )
            else:
                names[queue] = index
        self.wal(c.wal)
        if not c.storage.path:
            self.add(("storage", "path"), "must not be empty")
        self.listen_address(c.http.listen_address, ("http", "listen_address"))
        jobs: dict[str, int] = {}
        for index, job in enumerate(c.scrape):
            self.scrape(job, ("scrape", index))
            if job.job_name in jobs:
                self.add(
                    ("scrape", index, "job_name"),
                    f"duplicate job_name {job.job_name!r} (scrape[{jobs[job.job_name]}])",
                )
            jobs.setdefault(job.job_name, index)
        self.limits(c.scrape_defaults, ("scrape_defaults",))
        if c.receiver is not None:
            path = ("receiver", "listen_address")
            self.listen_address(c.receiver.listen_address, path)
            if c.receiver.listen_address == c.http.listen_address:
                self.add(path, "must differ from http.listen_address")
            if c.receiver.tls_config is not None:
                self.receiver_tls(c.receiver.tls_config, ("receiver", "tls_config"))
        if c.synthetic is not None:
            self.synthetic(c.synthetic, ("synthetic",))

    def receiver_tls(self, t: schema.ReceiverTLSConfig, path: KeyPath) -> None:
        if not (t.cert_pem or t.cert_file) or not (t.key_pem or t.key_file):
            self.add(path, "a server needs a certificate and a key (cert_* and key_*)")
        if t.client_auth_type not in schema.CLIENT_AUTH_TYPES:
            self.add(
                (*path, "client_auth_type"),
                f"unknown value {t.client_auth_type!r} "
                f"(use one of {', '.join(schema.CLIENT_AUTH_TYPES)})",
            )
        elif t.client_auth_type != "NoClientCert" and not (t.ca_pem or t.ca_file):
            self.add(path, f"client_auth_type {t.client_auth_type} needs ca_pem or ca_file")

    def wal(self, w: schema.WALConfig) -> None:
        if w.truncate_frequency <= 0:
            self.add(("wal", "truncate_frequency"), "must be greater than 0s")
        if w.max_keepalive_time <= w.min_keepalive_time:
            self.add(
                ("wal", "max_keepalive_time"),
                "must be greater than min_keepalive_time "
                f"({_dur(w.min_keepalive_time)}), got {_dur(w.max_keepalive_time)}",
            )
        size = w.segment_size
        if size % schema.WAL_PAGE_SIZE:
            self.add(("wal", "segment_size"), f"must be a multiple of 32768, got {size}")
        elif not _WAL_MIN_SEGMENT <= size <= _WAL_MAX_SEGMENT:
            self.add(
                ("wal", "segment_size"),
                f"must be between {_WAL_MIN_SEGMENT} and {_WAL_MAX_SEGMENT}, got {size}",
            )
        if w.max_size and w.max_size < 2 * size:
            self.add(
                ("wal", "max_size"),
                f"must be at least two segments ({format_size(2 * size)} with segment_size "
                f"{size}), got {format_size(w.max_size)}; use 0 for no limit",
            )
        if w.on_full not in schema.WAL_ON_FULL:
            self.add(
                ("wal", "on_full"),
                f"must be one of {', '.join(map(repr, schema.WAL_ON_FULL))}, got {w.on_full!r}",
            )

    def synthetic(self, s: schema.SyntheticConfig, path: KeyPath) -> None:
        if s.series < 1:
            self.add((*path, "series"), f"must be >= 1, got {s.series}")
        if s.metrics < 1:
            self.add((*path, "metrics"), f"must be >= 1, got {s.metrics}")
        elif s.series >= 1 and s.metrics > s.series:
            self.add((*path, "metrics"), f"must be <= series ({s.series}), got {s.metrics}")
        if s.interval <= 0:
            self.add((*path, "interval"), "must be greater than 0s")
        if not 0.0 <= s.churn <= 1.0:
            self.add((*path, "churn"), f"must be between 0 and 1, got {s.churn}")
        self.labels(s.labels, (*path, "labels"))

    # --- endpoints and scrape jobs -----------------------------------------------------

    def endpoint(self, e: schema.EndpointConfig, path: KeyPath) -> None:
        self.url(e.url, (*path, "url"), required=True)
        if e.remote_timeout <= 0:
            self.add((*path, "remote_timeout"), "must be greater than 0s")
        if e.protobuf_message not in schema.PROTOBUF_MESSAGES:
            self.add(
                (*path, "protobuf_message"),
                f"must be {schema.PROTOBUF_V1!r} or {schema.PROTOBUF_V2!r}, "
                f"got {e.protobuf_message!r}",
            )
        self.headers(e.headers, (*path, "headers"))
        self.http_client(e, path, extra_auth={"sigv4": e.sigv4, "azuread": e.azuread})
        if e.sigv4 is not None and bool(e.sigv4.access_key) != (e.sigv4.secret_key is not None):
            self.add((*path, "sigv4"), "access_key and secret_key must be set together")
        if e.azuread is not None:
            self.azuread(e.azuread, (*path, "azuread"))
        self.queue(e.queue_config, (*path, "queue_config"))
        m = e.metadata_config
        if m.send_interval <= 0:
            self.add((*path, "metadata_config", "send_interval"), "must be greater than 0s")
        if m.max_samples_per_send <= 0:
            self.add(
                (*path, "metadata_config", "max_samples_per_send"),
                f"must be > 0, got {m.max_samples_per_send}",
            )
        for index, rule in enumerate(e.write_relabel_config):
            self.relabel(rule, (*path, "write_relabel_config", index))

    def scrape(self, s: schema.ScrapeConfig, path: KeyPath) -> None:
        if not s.job_name:
            self.add((*path, "job_name"), "must not be empty")
        if not s.targets and not has_discovery(s):
            self.add((*path, "targets"), "must list at least one host:port (or use *_sd_configs)")
        for index, target in enumerate(s.targets):
            self.host_port(target, (*path, "targets", index), need_host=True)
        if s.scrape_interval <= 0:
            self.add((*path, "scrape_interval"), "must be greater than 0s")
        if s.scrape_timeout <= 0:
            self.add((*path, "scrape_timeout"), "must be greater than 0s")
        elif s.scrape_timeout > s.scrape_interval:
            self.add(
                (*path, "scrape_timeout"),
                f"must be <= scrape_interval ({_dur(s.scrape_interval)}), "
                f"got {_dur(s.scrape_timeout)}",
            )
        if not s.metrics_path.startswith("/"):
            self.add((*path, "metrics_path"), f"must start with '/', got {s.metrics_path!r}")
        if s.scheme not in ("http", "https"):
            self.add((*path, "scheme"), f"must be 'http' or 'https', got {s.scheme!r}")
        self.labels(s.labels, (*path, "labels"))
        self.http_client(s, path, extra_auth={})
        check_service_discovery(s, path, self)
        for key in ("relabel_configs", "metric_relabel_configs"):
            for index, rule in enumerate(getattr(s, key)):
                self.relabel(rule, (*path, key, index))
        self.limits(s, path)

    def limits(self, limits: Any, path: KeyPath) -> None:
        for key in schema.SCRAPE_LIMITS:
            value = getattr(limits, key)
            if value is not None and value < 0:
                self.add((*path, key), f"must be >= 0 (0: no limit), got {value}")

    def http_client(
        self, h: schema.HTTPClientConfig, path: KeyPath, extra_auth: dict[str, object]
    ) -> None:
        auth = {
            "basic_auth": h.basic_auth,
            "authorization": h.authorization,
            "bearer_token": h.bearer_token,
            "bearer_token_file": h.bearer_token_file or None,
            "oauth2": h.oauth2,
            **extra_auth,
        }
        chosen = [name for name, value in auth.items() if value is not None]
        if len(chosen) > 1:
            self.add(
                path,
                f"at most one authentication method may be set, got {', '.join(chosen)} "
                f"(choose one of {', '.join(auth)})",
            )
        if h.basic_auth is not None and h.basic_auth.password and h.basic_auth.password_file:
            self.add((*path, "basic_auth"), "password and password_file are mutually exclusive")
        if h.authorization is not None:
            a = h.authorization
            if a.credentials and a.credentials_file:
                self.add(
                    (*path, "authorization"),
                    "credentials and credentials_file are mutually exclusive",
                )
            if a.type.strip().lower() == "basic":
                self.add(
                    (*path, "authorization", "type"),
                    'cannot be "Basic"; use the basic_auth block instead',
                )
        if h.oauth2 is not None:
            self.oauth2(h.oauth2, (*path, "oauth2"))
        self.proxy(h, path)
        self.tls(h.tls_config, (*path, "tls_config"))
        self.headers(h.http_headers, (*path, "http_headers"))

    def oauth2(self, o: schema.OAuth2Config, path: KeyPath) -> None:
        if o.client_secret is None and not o.client_secret_file:
            self.add(path, "one of client_secret or client_secret_file is required")
        if o.client_secret is not None and o.client_secret_file:
            self.add(path, "client_secret and client_secret_file are mutually exclusive")
        if o.token_url:
            self.url(o.token_url, (*path, "token_url"), required=True)
        self.proxy(o, path)
        self.tls(o.tls_config, (*path, "tls_config"))

    def proxy(self, p: schema.HTTPClientConfig | schema.OAuth2Config, path: KeyPath) -> None:
        if p.proxy_url:
            scheme = urlsplit(p.proxy_url).scheme
            if scheme not in ("http", "https", "socks5"):
                self.add(
                    (*path, "proxy_url"),
                    "must be an http://, https:// or socks5:// URL, "
                    f"got {redact_url(p.proxy_url)!r}",
                )
        if p.no_proxy and not p.proxy_url and not p.proxy_from_environment:
            self.add((*path, "no_proxy"), "requires proxy_url")
        if p.proxy_from_environment and p.proxy_url:
            self.add((*path, "proxy_url"), "must not be set with proxy_from_environment")
        if p.proxy_from_environment and p.no_proxy:
            self.add((*path, "no_proxy"), "must not be set with proxy_from_environment")
        if p.proxy_connect_header and not (p.proxy_url or p.proxy_from_environment):
            self.add(
                (*path, "proxy_connect_header"),
                "requires proxy_url or proxy_from_environment",
            )

    def tls(self, t: schema.TLSConfig, path: KeyPath) -> None:
        for pem, file in (
            ("ca_pem", "ca_file"),
            ("cert_pem", "cert_file"),
            ("key_pem", "key_file"),
        ):
            if getattr(t, pem) and getattr(t, file):
                self.add(path, f"{pem} and {file} are mutually exclusive")
        has_cert = bool(t.cert_pem or t.cert_file)
        has_key = bool(t.key_pem is not None or t.key_file)
        if has_cert and not has_key:
            self.add(path, "a client certificate needs a key (key_pem or key_file)")
        if has_key and not has_cert:
            self.add(path, "a client key needs a certificate (cert_pem or cert_file)")
        if t.min_version and t.min_version not in schema.TLS_VERSIONS:
            self.add(
                (*path, "min_version"),
                f"must be one of {', '.join(schema.TLS_VERSIONS)}, got {t.min_version!r}",
            )

    def azuread(self, a: schema.AzureADConfig, path: KeyPath) -> None:
        if a.cloud not in schema.AZURE_CLOUDS:
            self.add(
                (*path, "cloud"),
                f"must be one of {', '.join(schema.AZURE_CLOUDS)}, got {a.cloud!r}",
            )
        chosen = [
            name for name in ("managed_identity", "oauth", "sdk") if getattr(a, name) is not None
        ]
        if len(chosen) != 1:
            got = ", ".join(chosen) if chosen else "none"
            self.add(path, f"exactly one of managed_identity, oauth, sdk is required, got {got}")
        if a.managed_identity is not None:
            self.uuid(a.managed_identity.client_id, (*path, "managed_identity", "client_id"))
        if a.oauth is not None:
            self.uuid(a.oauth.client_id, (*path, "oauth", "client_id"))
            self.tenant(a.oauth.tenant_id, (*path, "oauth", "tenant_id"))
        if a.sdk is not None and a.sdk.tenant_id:
            self.tenant(a.sdk.tenant_id, (*path, "sdk", "tenant_id"))

    def queue(self, q: schema.QueueConfig, path: KeyPath) -> None:
        for name in ("capacity", "max_shards", "min_shards", "max_samples_per_send"):
            value = getattr(q, name)
            if value <= 0:
                self.add((*path, name), f"must be > 0, got {value}")
        if 0 < q.max_shards < q.min_shards:
            self.add(
                (*path, "max_shards"),
                f"must be >= min_shards ({q.min_shards}), got {q.max_shards}",
            )
        if q.batch_send_deadline <= 0:
            self.add((*path, "batch_send_deadline"), "must be greater than 0s")
        if q.min_backoff <= 0:
            self.add((*path, "min_backoff"), "must be greater than 0s")
        if q.max_backoff < q.min_backoff:
            self.add(
                (*path, "max_backoff"),
                f"must be >= min_backoff ({_dur(q.min_backoff)}), got {_dur(q.max_backoff)}",
            )

    def relabel(self, r: schema.RelabelConfig, path: KeyPath) -> None:
        for problem in check_rule(r):
            self.add((*path, *problem.path), problem.message)

    # --- small value checks ------------------------------------------------------------

    def labels(self, labels: dict[str, str], path: KeyPath) -> None:
        for name, value in labels.items():
            if not is_valid_label_name(name):
                self.add((*path, name), f"{name!r} is not a valid label name")
            elif name.startswith("__"):
                self.add((*path, name), "label names starting with '__' are reserved")
            if value == "":
                self.add((*path, name), "label value must not be empty")

    def headers(self, headers: dict[str, Any], path: KeyPath) -> None:
        for name in headers:
            lowered = name.lower()
            if lowered == "authorization":
                self.add(
                    (*path, name),
                    "the Authorization header is set through basic_auth, authorization, "
                    "bearer_token, oauth2, sigv4 or azuread",
                )
            elif lowered in RESERVED_HEADERS:
                self.add((*path, name), f"{name!r} is a reserved header and cannot be set")
            elif not _HEADER_NAME.match(name):
                self.add((*path, name), f"{name!r} is not a valid HTTP header name")
            values = headers[name] if isinstance(headers[name], list) else [headers[name]]
            for value in values:
                if isinstance(value, Secret) and value.kind == "value":
                    text = value.reveal()
                    if "\r" in text or "\n" in text or "\0" in text:
                        # The value itself is never quoted: it may be a credential.
                        self.add((*path, name), "header value must not contain line breaks")

    def url(self, raw_url: str, path: KeyPath, *, required: bool) -> None:
        url = redact_url(raw_url)
        if not url:
            if required:
                self.add(path, "must not be empty")
            return
        try:
            parts = urlsplit(raw_url)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as exc:
            self.add(path, f"invalid URL {url!r}: {exc}")
            return
        if parts.scheme not in ("http", "https"):
            self.add(path, f"scheme must be http or https, got {url!r}")
        elif not parts.hostname:
            self.add(path, f"URL has no host: {url!r}")

    def listen_address(self, address: str, path: KeyPath) -> None:
        self.host_port(address, path, need_host=False)

    def host_port(self, address: str, path: KeyPath, *, need_host: bool) -> None:
        host, sep, port = address.rpartition(":")
        problem = ""
        if not sep:
            problem = "missing ':port'"
        elif not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
            problem = f"invalid port {port!r}"
        elif host.startswith("["):
            if not host.endswith("]"):
                problem = "unclosed '[' in IPv6 address"
            else:
                try:
                    ipaddress.IPv6Address(host[1:-1])
                except ValueError:
                    problem = f"invalid IPv6 address {host[1:-1]!r}"
        elif ":" in host:
            problem = "IPv6 addresses must be written in brackets, e.g. [::1]:9090"
        elif need_host and not host:
            problem = "missing host"
        elif host and not re.fullmatch(r"[A-Za-z0-9.-]+", host):
            problem = f"invalid host {host!r}"
        if problem:
            self.add(path, f"expected host:port, got {address!r} ({problem})")

    def uuid(self, value: str, path: KeyPath) -> None:
        try:
            uuid.UUID(value)
        except ValueError:
            self.add(
                path, f"must be a UUID like 00000000-0000-0000-0000-000000000000, got {value!r}"
            )

    def tenant(self, value: str, path: KeyPath) -> None:
        if not _TENANT_ID.match(value):
            self.add(path, f"invalid tenant ID {value!r} (letters, digits, '-' and '.' only)")
