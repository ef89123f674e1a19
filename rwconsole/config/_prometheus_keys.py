"""The key tables and value converters of ``rwconsole import prometheus``.

Each Prometheus block (``tls_config``, ``queue_config``, a scrape job, …) has a
table mapping its keys to the rwconsole key each one becomes and the converter
of its value, or to the reason it is not carried over. ``block`` applies a
table and reports every key it does not know. ``Context`` collects the report
(skipped settings, environment variables for inline secrets) and builds errors
that carry the input's line and column.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rwconsole.config.durations import format_duration_ns
from rwconsole.config.errors import KeyPath, format_path
from rwconsole.config.schema import SCRAPE_LIMITS

SCRAPE_DEFAULTS_TABLE = "scrape_defaults"

NOT_APPLICABLE: dict[str, str] = {
    "rule_files": "not applicable: rwconsole evaluates no recording or alerting rules",
    "alerting": "not applicable: rwconsole sends no alerts",
    "remote_read": "not applicable: rwconsole answers no queries",
    "storage": "not applicable: rwconsole keeps only a write-ahead log ([wal], [storage])",
    "tracing": "not applicable: rwconsole exports no traces",
    "scrape_config_files": "not carried over: convert each of those files separately",
    "runtime": "not applicable: Go runtime settings",
    "otlp": "not applicable: rwconsole has no OTLP receiver",
    "evaluation_interval": "not applicable: rwconsole evaluates no rules",
    "rule_query_offset": "not applicable: rwconsole evaluates no rules",
    "query_log_file": "not applicable: rwconsole answers no queries",
}

NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_TRUE = frozenset({"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"})
_FALSE = frozenset({"n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"})
_PROM_DURATION = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)
_DURATION_NS = (
    365 * 86400 * 10**9,
    7 * 86400 * 10**9,
    86400 * 10**9,
    3600 * 10**9,
    60 * 10**9,
    10**9,
    10**6,
)
_BYTES = re.compile(r"^(\d+)\s*([KMGTPE]i?B|B)?$")
_BYTE_POWERS = {"": 0, "B": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}


# --- report ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Skipped:
    """An input setting that is not in the output, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class EnvSecret:
    """An inline secret replaced by an environment variable reference."""

    variable: str
    path: str


class PrometheusConfigError(Exception):
    """The input is not a Prometheus config this importer can read (with its position)."""

    def __init__(
        self, source: str, message: str, line: int | None = None, column: int | None = None
    ) -> None:
        self.source = source
        self.message = message
        self.line = line
        self.column = column
        where = f"{source}:{line}:{column}" if line is not None else source
        super().__init__(f"{where}: {message}")


# --- conversion context ---------------------------------------------------------------


OMIT: Any = object()

Converter = Callable[[Any, KeyPath, "Context"], Any]


@dataclass
class Context:
    """One conversion: the input's positions, the report so far, the name scope of secrets."""

    source: str
    base_dir: Path
    inline_secrets: bool
    marks: dict[KeyPath, tuple[int, int]]
    skipped: list[Skipped] = field(default_factory=list)
    env_secrets: list[EnvSecret] = field(default_factory=list)
    inline_kept: list[str] = field(default_factory=list)
    scope: str = ""
    used_variables: set[str] = field(default_factory=set)

    def error(self, path: KeyPath, message: str) -> PrometheusConfigError:
        line, column = self.marks.get(path, (None, None))
        where = format_path(path)
        text = f"{where}: {message}" if where else message
        return PrometheusConfigError(self.source, text, line, column)

    def skip(self, path: KeyPath, reason: str) -> None:
        self.skipped.append(Skipped(format_path(path), reason))

    def env_variable(self, path: KeyPath, setting: str) -> str:
        name = _variable_part(f"RW_{self.scope}_{setting}")
        candidate, n = name, 1
        while candidate in self.used_variables:
            n += 1
            candidate = f"{name}_{n}"
        self.used_variables.add(candidate)
        self.env_secrets.append(EnvSecret(candidate, format_path(path)))
        return candidate


def _variable_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").upper()


@dataclass(frozen=True)
class _Key:
    """Where a Prometheus key goes: its rwconsole name and the converter of its value."""

    target: str
    convert: Converter


_Spec = Mapping[str, "_Key | str"]
"""A block's keys: a ``_Key``, or the reason the key is not carried over."""


def block(
    value: Any,
    path: KeyPath,
    ctx: Context,
    spec: _Spec,
    unknown: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """Convert a mapping by ``spec``; keys not in it are reported as skipped."""
    if not isinstance(value, dict):
        raise ctx.error(path, f"expected a mapping, got {kind_of(value)}")
    out: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for key, item in value.items():
        here = (*path, key)
        rule = spec.get(key)
        if rule is None:
            ctx.skip(here, unknown(key) if unknown else "no rwconsole equivalent")
            continue
        if isinstance(rule, str):
            ctx.skip(here, rule)
            continue
        if item is None:
            continue
        converted = rule.convert(item, here, ctx)
        if converted is OMIT:
            continue
        if rule.target in out:
            raise ctx.error(here, f"{origin[rule.target]} and {key} are mutually exclusive")
        out[rule.target] = converted
        origin[rule.target] = key
    return out


def _sub(spec: _Spec) -> Converter:
    def convert(value: Any, path: KeyPath, ctx: Context) -> Any:
        return block(value, path, ctx, spec)

    return convert


def list_of(convert_item: Converter) -> Converter:
    def convert(value: Any, path: KeyPath, ctx: Context) -> Any:
        if not isinstance(value, list):
            raise ctx.error(path, f"expected a list, got {kind_of(value)}")
        return [convert_item(item, (*path, i), ctx) for i, item in enumerate(value)]

    return convert


def _scoped(suffix: str, convert_item: Converter) -> Converter:
    """Like ``convert_item``, with ``suffix`` (and the list index) added to variable names."""

    def convert(value: Any, path: KeyPath, ctx: Context) -> Any:
        saved = ctx.scope
        index = f"_{path[-1]}" if isinstance(path[-1], int) else ""
        ctx.scope = f"{saved}_{suffix}{index}"
        try:
            return convert_item(value, path, ctx)
        finally:
            ctx.scope = saved

    return convert


# --- scalar converters ----------------------------------------------------------------


def kind_of(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "nothing" if value is None else "a scalar"


def _str(value: Any, path: KeyPath, ctx: Context) -> str:
    if not isinstance(value, str):
        raise ctx.error(path, f"expected a string, got {kind_of(value)}")
    return value


def _bool(value: Any, path: KeyPath, ctx: Context) -> bool:
    text = _str(value, path, ctx)
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ctx.error(path, f"expected true or false, got {text!r}")


def _int(value: Any, path: KeyPath, ctx: Context) -> int:
    text = _str(value, path, ctx).replace("_", "")
    try:
        return int(text, 0) if text[:2].lower() in ("0x", "0o") else int(text)
    except ValueError:
        raise ctx.error(path, f"expected an integer, got {text!r}") from None


def _duration(value: Any, path: KeyPath, ctx: Context) -> str:
    return format_duration_ns(duration_ns(value, path, ctx))


def duration_ns(value: Any, path: KeyPath, ctx: Context) -> int:
    text = _str(value, path, ctx)
    if text == "0":
        return 0
    match = _PROM_DURATION.match(text)
    if not text or match is None:
        raise ctx.error(
            path, f'invalid duration {text!r} (expected e.g. "30s", "5m", "1h30m", "1d")'
        )
    return sum(int(n) * size for n, size in zip(match.groups(), _DURATION_NS, strict=True) if n)


def _bytes(value: Any, path: KeyPath, ctx: Context) -> int:
    text = _str(value, path, ctx).strip()
    match = _BYTES.match(text)
    if match is None:
        raise ctx.error(path, f'invalid size {text!r} (expected e.g. "10MB", "512KiB")')
    number, unit = match.group(1), match.group(2) or ""
    return int(number) * 1024 ** _BYTE_POWERS[unit[:1]]


def _str_list(value: Any, path: KeyPath, ctx: Context) -> list[str]:
    return list(list_of(_str)(value, path, ctx))


def str_map(value: Any, path: KeyPath, ctx: Context) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ctx.error(path, f"expected a mapping, got {kind_of(value)}")
    return {k: _str("" if v is None else v, (*path, k), ctx) for k, v in value.items()}


def _params(value: Any, path: KeyPath, ctx: Context) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise ctx.error(path, f"expected a mapping, got {kind_of(value)}")
    return {k: _str_list(v or [], (*path, k), ctx) for k, v in value.items()}


def _path(value: Any, path: KeyPath, ctx: Context) -> str:
    text = _str(value, path, ctx)
    if not text:
        return text
    full = Path(text).expanduser()
    return str(full if full.is_absolute() else ctx.base_dir / full)


def _paths(value: Any, path: KeyPath, ctx: Context) -> list[str]:
    return list(list_of(_path)(value, path, ctx))


def _lower(value: Any, path: KeyPath, ctx: Context) -> str:
    return _str(value, path, ctx).lower()


# --- secrets ----------------------------------------------------------------------------


def _secret(setting: str) -> Converter:
    """An inline secret: an env reference (the variable is reported) or, if asked, the value."""

    def convert(value: Any, path: KeyPath, ctx: Context) -> Any:
        text = _str(value, path, ctx)
        if not text:
            return OMIT
        if ctx.inline_secrets:
            ctx.inline_kept.append(format_path(path))
            return text
        return {"env": ctx.env_variable(path, setting)}

    return convert


def _secret_file(value: Any, path: KeyPath, ctx: Context) -> Any:
    file = _path(value, path, ctx)
    return {"file": file} if file else OMIT


def _proxy_connect_header(value: Any, path: KeyPath, ctx: Context) -> dict[str, list[Any]]:
    if not isinstance(value, dict):
        raise ctx.error(path, f"expected a mapping, got {kind_of(value)}")
    out = {}
    for name, values in value.items():
        convert = list_of(_secret(f"PROXY_CONNECT_HEADER_{name}"))
        out[name] = [v for v in convert(values or [], (*path, name), ctx) if v is not OMIT]
    return out


def _http_headers(value: Any, path: KeyPath, ctx: Context) -> dict[str, list[Any]]:
    """``{name: {values, secrets, files}}`` → one list per name (``values`` are not secret)."""
    if not isinstance(value, dict):
        raise ctx.error(path, f"expected a mapping, got {kind_of(value)}")
    out = {}
    for name, header in value.items():
        spec: dict[str, _Key | str] = {
            "values": _Key("values", list_of(_str)),
            "secrets": _Key("secrets", list_of(_secret(f"HEADER_{name}"))),
            "files": _Key("files", list_of(_secret_file)),
        }
        converted = block(header or {}, (*path, name), ctx, spec)
        out[name] = [v for items in converted.values() for v in items if v is not OMIT]
    return out


# --- block tables ------------------------------------------------------------------------


TLS: dict[str, _Key | str] = {
    "ca_file": _Key("ca_file", _path),
    "cert_file": _Key("cert_file", _path),
    "key_file": _Key("key_file", _path),
    "ca": _Key("ca_pem", _str),
    "cert": _Key("cert_pem", _str),
    "key": _Key("key_pem", _secret("TLS_KEY")),
    "server_name": _Key("server_name", _str),
    "insecure_skip_verify": _Key("insecure_skip_verify", _bool),
    "min_version": _Key("min_version", _str),
    "max_version": "rwconsole has no maximum TLS version",
}

_PROXY: dict[str, _Key | str] = {
    "proxy_url": _Key("proxy_url", _str),
    "no_proxy": _Key("no_proxy", _str),
    "proxy_from_environment": _Key("proxy_from_environment", _bool),
    "proxy_connect_header": _Key("proxy_connect_header", _proxy_connect_header),
}


OAUTH2: dict[str, _Key | str] = {
    "client_id": _Key("client_id", _str),
    "client_secret": _Key("client_secret", _secret("CLIENT_SECRET")),
    "client_secret_file": _Key("client_secret", _secret_file),
    "scopes": _Key("scopes", _str_list),
    "token_url": _Key("token_url", _str),
    "endpoint_params": _Key("endpoint_params", str_map),
    "tls_config": _Key("tls_config", _sub(TLS)),
    **_PROXY,
}

HTTP_CLIENT: dict[str, _Key | str] = {
    "basic_auth": _Key(
        "basic_auth",
        _sub(
            {
                "username": _Key("username", _str),
                "password": _Key("password", _secret("PASSWORD")),
                "password_file": _Key("password", _secret_file),
            }
        ),
    ),
    "authorization": _Key(
        "authorization",
        _sub(
            {
                "type": _Key("type", _str),
                "credentials": _Key("credentials", _secret("CREDENTIALS")),
                "credentials_file": _Key("credentials", _secret_file),
            }
        ),
    ),
    "bearer_token": _Key("bearer_token", _secret("BEARER_TOKEN")),
    "bearer_token_file": _Key("bearer_token", _secret_file),
    "oauth2": _Key("oauth2", _sub(OAUTH2)),
    "tls_config": _Key("tls_config", _sub(TLS)),
    "follow_redirects": _Key("follow_redirects", _bool),
    "enable_http2": _Key("enable_http2", _bool),
    "http_headers": _Key("http_headers", _http_headers),
    **_PROXY,
}

RELABEL: dict[str, _Key | str] = {
    "source_labels": _Key("source_labels", _str_list),
    "separator": _Key("separator", _str),
    "regex": _Key("regex", _str),
    "modulus": _Key("modulus", _int),
    "target_label": _Key("target_label", _str),
    "replacement": _Key("replacement", _str),
    "action": _Key("action", _lower),
}
_RELABEL_LIST = list_of(_sub(RELABEL))

QUEUE: dict[str, _Key | str] = {
    "capacity": _Key("capacity", _int),
    "max_shards": _Key("max_shards", _int),
    "min_shards": _Key("min_shards", _int),
    "max_samples_per_send": _Key("max_samples_per_send", _int),
    "batch_send_deadline": _Key("batch_send_deadline", _duration),
    "min_backoff": _Key("min_backoff", _duration),
    "max_backoff": _Key("max_backoff", _duration),
    "retry_on_http_429": _Key("retry_on_http_429", _bool),
    "sample_age_limit": _Key("sample_age_limit", _duration),
}

METADATA: dict[str, _Key | str] = {
    "send": _Key("send", _bool),
    "send_interval": _Key("send_interval", _duration),
    "max_samples_per_send": _Key("max_samples_per_send", _int),
}

SIGV4: dict[str, _Key | str] = {
    "region": _Key("region", _str),
    "access_key": _Key("access_key", _str),
    "secret_key": _Key("secret_key", _secret("SECRET_KEY")),
    "profile": _Key("profile", _str),
    "role_arn": _Key("role_arn", _str),
}

AZUREAD: dict[str, _Key | str] = {
    "cloud": _Key("cloud", _str),
    "managed_identity": _Key("managed_identity", _sub({"client_id": _Key("client_id", _str)})),
    "oauth": _Key(
        "oauth",
        _sub(
            {
                "client_id": _Key("client_id", _str),
                "client_secret": _Key("client_secret", _secret("CLIENT_SECRET")),
                "tenant_id": _Key("tenant_id", _str),
            }
        ),
    ),
    "sdk": _Key("sdk", _sub({"tenant_id": _Key("tenant_id", _str)})),
}

REMOTE_WRITE: dict[str, _Key | str] = {
    "url": _Key("url", _str),
    "name": _Key("name", _str),
    "remote_timeout": _Key("remote_timeout", _duration),
    # Prometheus treats these header values as plain settings, so they are kept as written.
    "headers": _Key("headers", str_map),
    "send_exemplars": _Key("send_exemplars", _bool),
    "send_native_histograms": _Key("send_native_histograms", _bool),
    "protobuf_message": _Key("protobuf_message", _str),
    "queue_config": _Key("queue_config", _sub(QUEUE)),
    "metadata_config": _Key("metadata_config", _sub(METADATA)),
    "write_relabel_configs": _Key("write_relabel_config", _RELABEL_LIST),
    "sigv4": _Key("sigv4", _sub(SIGV4)),
    "azuread": _Key("azuread", _sub(AZUREAD)),
    **HTTP_CLIENT,
}

KUBERNETES_SD: dict[str, _Key | str] = {
    "role": _Key("role", _lower),
    "api_server": _Key("api_server", _str),
    "kubeconfig_file": _Key("kubeconfig_file", _path),
    "namespaces": _Key(
        "namespaces",
        _sub(
            {
                "names": _Key("names", _str_list),
                "own_namespace": _Key("own_namespace", _bool),
            }
        ),
    ),
    "selectors": _Key(
        "selectors",
        list_of(
            _sub(
                {
                    "role": _Key("role", _lower),
                    "label": _Key("label", _str),
                    "field": _Key("field", _str),
                }
            )
        ),
    ),
    "attach_metadata": "rwconsole does not attach node or namespace metadata",
    **HTTP_CLIENT,
}

SERVICE_DISCOVERY: dict[str, _Key | str] = {
    "static_configs": _Key(
        "static_configs",
        list_of(_sub({"targets": _Key("targets", _str_list), "labels": _Key("labels", str_map)})),
    ),
    "file_sd_configs": _Key(
        "file_sd_configs",
        list_of(
            _sub(
                {
                    "files": _Key("files", _paths),
                    "refresh_interval": _Key("refresh_interval", _duration),
                }
            )
        ),
    ),
    "http_sd_configs": _Key(
        "http_sd_configs",
        list_of(
            _scoped(
                "HTTP_SD",
                _sub(
                    {
                        "url": _Key("url", _str),
                        "refresh_interval": _Key("refresh_interval", _duration),
                        **HTTP_CLIENT,
                    }
                ),
            )
        ),
    ),
    "dns_sd_configs": _Key(
        "dns_sd_configs",
        list_of(
            _sub(
                {
                    "names": _Key("names", _str_list),
                    "type": _Key("type", _str),
                    "port": _Key("port", _int),
                    "refresh_interval": _Key("refresh_interval", _duration),
                }
            )
        ),
    ),
    "kubernetes_sd_configs": _Key(
        "kubernetes_sd_configs", list_of(_scoped("KUBERNETES_SD", _sub(KUBERNETES_SD)))
    ),
}

LIMITS: dict[str, _Key | str] = {
    name: _Key(name, _bytes if name == "body_size_limit" else _int) for name in SCRAPE_LIMITS
}

SCRAPE_EXTRAS: dict[str, _Key | str] = {
    "relabel_configs": _Key("relabel_configs", _RELABEL_LIST),
    "metric_relabel_configs": _Key("metric_relabel_configs", _RELABEL_LIST),
    **LIMITS,
}
"""Scrape keys whose rwconsole names follow Prometheus' (relabelling and limits)."""

SCRAPE: dict[str, _Key | str] = {
    "job_name": _Key("job_name", _str),
    "scrape_interval": _Key("scrape_interval", duration_ns),
    "scrape_timeout": _Key("scrape_timeout", duration_ns),
    "metrics_path": _Key("metrics_path", _str),
    "scheme": _Key("scheme", _lower),
    "params": _Key("params", _params),
    "honor_labels": _Key("honor_labels", _bool),
    "honor_timestamps": _Key("honor_timestamps", _bool),
    **HTTP_CLIENT,
    **SERVICE_DISCOVERY,
    **SCRAPE_EXTRAS,
}

GLOBAL: dict[str, _Key | str] = {
    "scrape_interval": _Key("scrape_interval", duration_ns),
    "scrape_timeout": _Key("scrape_timeout", duration_ns),
    "external_labels": _Key("external_labels", str_map),
    **LIMITS,
    **{key: NOT_APPLICABLE[key] for key in ("evaluation_interval", "rule_query_offset")},
    "query_log_file": NOT_APPLICABLE["query_log_file"],
}
