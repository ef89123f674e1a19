"""Convert a Prometheus configuration file (``prometheus.yml``) into rwconsole's TOML.

Owns the conversion behind ``rwconsole import prometheus``: ``global``,
``scrape_configs`` (static, file, HTTP, DNS and Kubernetes discovery,
relabelling, limits) and ``remote_write`` (queue and metadata tuning, write
relabelling, authentication, TLS, proxy) become ``external_labels``,
``[scrape_defaults]``, ``[[scrape]]`` and ``[[endpoint]]``. Everything else is
listed in ``ImportResult.skipped`` with the reason, never dropped silently.

The mapping is table-driven: each Prometheus block has a table of its keys, the
rwconsole key each one becomes and the converter of its value; a key absent
from the table is reported as not carried over.

Secrets: a ``*_file`` setting becomes a ``{ file = … }`` reference; a secret
written inline becomes a ``{ env = … }`` reference to a derived variable
(``RW_<JOB or ENDPOINT NAME>_<SETTING>``), listed in ``ImportResult.env_secrets``,
unless ``inline_secrets`` keeps it as written. Relative paths are made absolute
against the input file's directory, which is how Prometheus resolves them.
Durations may use Prometheus' ``d``, ``w`` and ``y`` units; they are written in
hours. Unset settings whose Prometheus default differs from rwconsole's
(``send_exemplars``, ``retry_on_http_429``) are written with Prometheus' value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w
import yaml

from rwconsole.config.durations import format_duration_ns
from rwconsole.config.errors import KeyPath, format_path

# Keys added to the scrape schema alongside this importer; emitted under these names.
SCRAPE_LIMITS = (
    "body_size_limit",
    "sample_limit",
    "label_limit",
    "label_name_length_limit",
    "label_value_length_limit",
    "target_limit",
)
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

PROMETHEUS_DEFAULTS: dict[str, dict[str, Any]] = {
    "endpoint": {"send_exemplars": False},
    "queue_config": {"retry_on_http_429": False},
}
"""Prometheus defaults that differ from rwconsole's; written when the input leaves them unset."""

_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
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


# --- results ------------------------------------------------------------------------


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


@dataclass
class ImportResult:
    """The converted document and the report of what could not be carried over."""

    source: str
    document: dict[str, Any]
    skipped: list[Skipped] = field(default_factory=list)
    env_secrets: list[EnvSecret] = field(default_factory=list)
    inline_secrets: list[str] = field(default_factory=list)
    """Paths of secrets kept as written (``inline_secrets=True``)."""

    def toml_text(self) -> str:
        """The output file: a comment header with the report, then the TOML document."""
        return self.header() + "\n" + dump_toml(self.document)

    def header(self) -> str:
        lines = [f"Converted from {Path(self.source).name} by 'rwconsole import prometheus'."]
        if self.env_secrets:
            lines += ["", "Environment variables to set (secrets written inline in the input):"]
            lines += [f"  {s.variable}  <- {s.path}" for s in self.env_secrets]
        if self.skipped:
            lines += ["", "Not carried over:"]
            lines += [f"  {s.path}: {s.reason}" for s in self.skipped]
        return "".join(f"# {line}".rstrip() + "\n" for line in lines)


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


class PrometheusFileError(Exception):
    """The input file cannot be read at all."""


def import_prometheus(path: str | Path, *, inline_secrets: bool = False) -> ImportResult:
    """Read and convert the Prometheus config file at ``path``."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PrometheusFileError(f"{path}: not UTF-8 text (byte offset {exc.start})") from None
    except OSError as exc:
        raise PrometheusFileError(f"{path}: {exc.strerror or exc}") from None
    return convert_prometheus(
        text, str(path), base_dir=file.resolve().parent, inline_secrets=inline_secrets
    )


def convert_prometheus(
    text: str, source: str, *, base_dir: Path, inline_secrets: bool = False
) -> ImportResult:
    """Convert Prometheus config ``text``; ``source`` names it in errors and the header."""
    data, marks = _load_yaml(text, source)
    ctx = _Context(source, base_dir, inline_secrets, marks)
    document = _convert_root(data, ctx)
    return ImportResult(source, document, ctx.skipped, ctx.env_secrets, ctx.inline_kept)


# --- YAML with positions --------------------------------------------------------------


def _load_yaml(text: str, source: str) -> tuple[Any, dict[KeyPath, tuple[int, int]]]:
    """Plain data (scalars kept as text, like a typed Go decoder sees them) and positions."""
    try:
        node = yaml.compose(text, Loader=yaml.BaseLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = f"YAML syntax error: {exc.problem or exc.context}"
        if mark is None:
            raise PrometheusConfigError(source, message) from None
        raise PrometheusConfigError(source, message, mark.line + 1, mark.column + 1) from None
    except yaml.YAMLError as exc:
        raise PrometheusConfigError(source, f"YAML error: {exc}") from None
    marks: dict[KeyPath, tuple[int, int]] = {}
    return (_from_node(node, (), marks) if node is not None else None), marks


def _from_node(node: yaml.Node, path: KeyPath, marks: dict[KeyPath, tuple[int, int]]) -> Any:
    marks.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.ScalarNode):
        return None if node.style is None and node.value in _NULLS else node.value
    if isinstance(node, yaml.SequenceNode):
        return [_from_node(item, (*path, i), marks) for i, item in enumerate(node.value)]
    out: dict[str, Any] = {}
    merged: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value)
        if key == "<<":  # YAML merge key: the merged mapping(s) give defaults
            sources = (
                value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            )
            for src in sources:
                value = _from_node(src, path, marks)
                if isinstance(value, dict):
                    merged = {**value, **merged}
            continue
        out[key] = _from_node(value_node, (*path, key), marks)
    return {**merged, **out}


# --- conversion context ---------------------------------------------------------------


_OMIT: Any = object()

Converter = Callable[[Any, KeyPath, "_Context"], Any]


@dataclass
class _Context:
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


def _block(
    value: Any,
    path: KeyPath,
    ctx: _Context,
    spec: _Spec,
    unknown: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """Convert a mapping by ``spec``; keys not in it are reported as skipped."""
    if not isinstance(value, dict):
        raise ctx.error(path, f"expected a mapping, got {_kind(value)}")
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
        if converted is _OMIT:
            continue
        if rule.target in out:
            raise ctx.error(here, f"{origin[rule.target]} and {key} are mutually exclusive")
        out[rule.target] = converted
        origin[rule.target] = key
    return out


def _sub(spec: _Spec) -> Converter:
    def convert(value: Any, path: KeyPath, ctx: _Context) -> Any:
        return _block(value, path, ctx, spec)

    return convert


def _list_of(convert_item: Converter) -> Converter:
    def convert(value: Any, path: KeyPath, ctx: _Context) -> Any:
        if not isinstance(value, list):
            raise ctx.error(path, f"expected a list, got {_kind(value)}")
        return [convert_item(item, (*path, i), ctx) for i, item in enumerate(value)]

    return convert


def _scoped(suffix: str, convert_item: Converter) -> Converter:
    """Like ``convert_item``, with ``suffix`` (and the list index) added to variable names."""

    def convert(value: Any, path: KeyPath, ctx: _Context) -> Any:
        saved = ctx.scope
        index = f"_{path[-1]}" if isinstance(path[-1], int) else ""
        ctx.scope = f"{saved}_{suffix}{index}"
        try:
            return convert_item(value, path, ctx)
        finally:
            ctx.scope = saved

    return convert


# --- scalar converters ----------------------------------------------------------------


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "nothing" if value is None else "a scalar"


def _str(value: Any, path: KeyPath, ctx: _Context) -> str:
    if not isinstance(value, str):
        raise ctx.error(path, f"expected a string, got {_kind(value)}")
    return value


def _bool(value: Any, path: KeyPath, ctx: _Context) -> bool:
    text = _str(value, path, ctx)
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ctx.error(path, f"expected true or false, got {text!r}")


def _int(value: Any, path: KeyPath, ctx: _Context) -> int:
    text = _str(value, path, ctx).replace("_", "")
    try:
        return int(text, 0) if text[:2].lower() in ("0x", "0o") else int(text)
    except ValueError:
        raise ctx.error(path, f"expected an integer, got {text!r}") from None


def _duration(value: Any, path: KeyPath, ctx: _Context) -> str:
    return format_duration_ns(_duration_ns(value, path, ctx))


def _duration_ns(value: Any, path: KeyPath, ctx: _Context) -> int:
    text = _str(value, path, ctx)
    if text == "0":
        return 0
    match = _PROM_DURATION.match(text)
    if not text or match is None:
        raise ctx.error(
            path, f'invalid duration {text!r} (expected e.g. "30s", "5m", "1h30m", "1d")'
        )
    return sum(int(n) * size for n, size in zip(match.groups(), _DURATION_NS, strict=True) if n)


def _bytes(value: Any, path: KeyPath, ctx: _Context) -> int:
    text = _str(value, path, ctx).strip()
    match = _BYTES.match(text)
    if match is None:
        raise ctx.error(path, f'invalid size {text!r} (expected e.g. "10MB", "512KiB")')
    number, unit = match.group(1), match.group(2) or ""
    return int(number) * 1024 ** _BYTE_POWERS[unit[:1]]


def _str_list(value: Any, path: KeyPath, ctx: _Context) -> list[str]:
    return _list_of(_str)(value, path, ctx)  # type: ignore[no-any-return]


def _str_map(value: Any, path: KeyPath, ctx: _Context) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ctx.error(path, f"expected a mapping, got {_kind(value)}")
    return {k: _str("" if v is None else v, (*path, k), ctx) for k, v in value.items()}


def _params(value: Any, path: KeyPath, ctx: _Context) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise ctx.error(path, f"expected a mapping, got {_kind(value)}")
    return {k: _str_list(v or [], (*path, k), ctx) for k, v in value.items()}


def _path(value: Any, path: KeyPath, ctx: _Context) -> str:
    text = _str(value, path, ctx)
    if not text:
        return text
    full = Path(text).expanduser()
    return str(full if full.is_absolute() else ctx.base_dir / full)


def _paths(value: Any, path: KeyPath, ctx: _Context) -> list[str]:
    return _list_of(_path)(value, path, ctx)  # type: ignore[no-any-return]


def _lower(value: Any, path: KeyPath, ctx: _Context) -> str:
    return _str(value, path, ctx).lower()


# --- secrets ----------------------------------------------------------------------------


def _secret(setting: str) -> Converter:
    """An inline secret: an env reference (the variable is reported) or, if asked, the value."""

    def convert(value: Any, path: KeyPath, ctx: _Context) -> Any:
        text = _str(value, path, ctx)
        if not text:
            return _OMIT
        if ctx.inline_secrets:
            ctx.inline_kept.append(format_path(path))
            return text
        return {"env": ctx.env_variable(path, setting)}

    return convert


def _secret_file(value: Any, path: KeyPath, ctx: _Context) -> Any:
    file = _path(value, path, ctx)
    return {"file": file} if file else _OMIT


def _proxy_connect_header(value: Any, path: KeyPath, ctx: _Context) -> dict[str, list[Any]]:
    if not isinstance(value, dict):
        raise ctx.error(path, f"expected a mapping, got {_kind(value)}")
    out = {}
    for name, values in value.items():
        convert = _list_of(_secret(f"PROXY_CONNECT_HEADER_{name}"))
        out[name] = [v for v in convert(values or [], (*path, name), ctx) if v is not _OMIT]
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
    "endpoint_params": _Key("endpoint_params", _str_map),
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
_RELABEL_LIST = _list_of(_sub(RELABEL))

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
    "headers": _Key("headers", _str_map),
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
        _list_of(
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
        _list_of(_sub({"targets": _Key("targets", _str_list), "labels": _Key("labels", _str_map)})),
    ),
    "file_sd_configs": _Key(
        "file_sd_configs",
        _list_of(
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
        _list_of(
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
        _list_of(
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
        "kubernetes_sd_configs", _list_of(_scoped("KUBERNETES_SD", _sub(KUBERNETES_SD)))
    ),
}

SCRAPE_EXTRAS: dict[str, _Key | str] = {
    "relabel_configs": _Key("relabel_configs", _RELABEL_LIST),
    "metric_relabel_configs": _Key("metric_relabel_configs", _RELABEL_LIST),
    "body_size_limit": _Key("body_size_limit", _bytes),
    **{name: _Key(name, _int) for name in SCRAPE_LIMITS if name != "body_size_limit"},
}
"""Scrape keys whose rwconsole names follow Prometheus' (relabelling and limits)."""

SCRAPE: dict[str, _Key | str] = {
    "job_name": _Key("job_name", _str),
    "scrape_interval": _Key("scrape_interval", _duration_ns),
    "scrape_timeout": _Key("scrape_timeout", _duration_ns),
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
    "scrape_interval": _Key("scrape_interval", _duration_ns),
    "scrape_timeout": _Key("scrape_timeout", _duration_ns),
    "external_labels": _Key("external_labels", _str_map),
    "body_size_limit": _Key("body_size_limit", _bytes),
    **{name: _Key(name, _int) for name in SCRAPE_LIMITS if name != "body_size_limit"},
    **{key: NOT_APPLICABLE[key] for key in ("evaluation_interval", "rule_query_offset")},
    "query_log_file": NOT_APPLICABLE["query_log_file"],
}

_DEFAULT_INTERVAL_NS = 60 * 10**9
_DEFAULT_TIMEOUT_NS = 10 * 10**9


# --- top level ------------------------------------------------------------------------


def _convert_root(data: Any, ctx: _Context) -> dict[str, Any]:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ctx.error((), f"expected a mapping at the top level, got {_kind(data)}")
    out: dict[str, Any] = {}
    glob = _block(data.get("global") or {}, ("global",), ctx, GLOBAL)
    interval = glob.pop("scrape_interval", _DEFAULT_INTERVAL_NS)
    timeout = glob.pop("scrape_timeout", None)
    if timeout is not None and timeout > interval:
        raise ctx.error(("global", "scrape_timeout"), "is greater than scrape_interval")
    if timeout is None:
        timeout = min(_DEFAULT_TIMEOUT_NS, interval)
    if "external_labels" in glob:
        out["external_labels"] = glob.pop("external_labels")
    if glob:
        out[SCRAPE_DEFAULTS_TABLE] = glob
    endpoints = _list_of(_remote_write)(data.get("remote_write") or [], ("remote_write",), ctx)
    if endpoints:
        out["endpoint"] = endpoints
    jobs = [
        _scrape(job, ("scrape_configs", i), ctx, interval, timeout)
        for i, job in enumerate(_as_list(data.get("scrape_configs"), ("scrape_configs",), ctx))
    ]
    _check_unique_jobs(jobs, ctx)
    if jobs:
        out["scrape"] = jobs
    for key in data:
        if key not in ("global", "remote_write", "scrape_configs"):
            ctx.skip((key,), NOT_APPLICABLE.get(key, "no rwconsole equivalent"))
    return out


def _as_list(value: Any, path: KeyPath, ctx: _Context) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ctx.error(path, f"expected a list, got {_kind(value)}")
    return value


def _remote_write(value: Any, path: KeyPath, ctx: _Context) -> dict[str, Any]:
    name = value.get("name") if isinstance(value, dict) else None
    ctx.scope = name if isinstance(name, str) and name else f"REMOTE_WRITE_{path[-1]}"
    endpoint = _block(value, path, ctx, REMOTE_WRITE)
    if "url" not in endpoint:
        raise ctx.error(path, "url is required")
    for key, default in PROMETHEUS_DEFAULTS["endpoint"].items():
        endpoint.setdefault(key, default)
    queue = endpoint.setdefault("queue_config", {})
    for key, default in PROMETHEUS_DEFAULTS["queue_config"].items():
        queue.setdefault(key, default)
    return endpoint


def _scrape(
    value: Any, path: KeyPath, ctx: _Context, interval: int, timeout: int
) -> dict[str, Any]:
    job_name = value.get("job_name") if isinstance(value, dict) else None
    if not isinstance(job_name, str) or not job_name:
        raise ctx.error(path, "job_name is required")
    ctx.scope = job_name
    job = _block(value, path, ctx, SCRAPE, unknown=_unknown_scrape_key)
    # As Prometheus: the global interval applies, and an unset timeout never exceeds it.
    job_interval = job.get("scrape_interval", interval)
    if "scrape_timeout" not in job:
        job["scrape_timeout"] = min(timeout, job_interval)
    elif job["scrape_timeout"] > job_interval:
        raise ctx.error((*path, "scrape_timeout"), "is greater than scrape_interval")
    job.pop("scrape_interval", None)
    first = {
        "job_name": job.pop("job_name"),
        "scrape_interval": format_duration_ns(job_interval),
        "scrape_timeout": format_duration_ns(job.pop("scrape_timeout")),
    }
    return {**first, **job}


def _unknown_scrape_key(key: str) -> str:
    if key.endswith("_sd_configs"):
        kind = key.removesuffix("_sd_configs")
        return f"rwconsole has no {kind} service discovery; the targets it finds are not scraped"
    return "no rwconsole equivalent"


def _check_unique_jobs(jobs: list[dict[str, Any]], ctx: _Context) -> None:
    seen: set[str] = set()
    for i, job in enumerate(jobs):
        if job["job_name"] in seen:
            raise ctx.error(
                ("scrape_configs", i, "job_name"), f"duplicate job name {job['job_name']!r}"
            )
        seen.add(job["job_name"])


# --- TOML output ---------------------------------------------------------------------------


def dump_toml(document: Mapping[str, Any]) -> str:
    """TOML text of ``document`` with secret references written inline (``{ env = "X" }``)."""
    return "".join(_table_lines(document, "", aot=False)).lstrip("\n")


def _is_reference(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("env", "file")


def _is_table(value: Any) -> bool:
    return isinstance(value, dict) and not _is_reference(value)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_table(v) for v in value)


def _table_lines(table: Mapping[str, Any], name: str, *, aot: bool) -> list[str]:
    literals = [(k, v) for k, v in table.items() if not _is_table(v) and not _is_table_array(v)]
    nested = [(k, v) for k, v in table.items() if _is_table(v) or _is_table_array(v)]
    lines: list[str] = []
    if name and (aot or literals or not nested):
        lines.append(f"\n[[{name}]]\n" if aot else f"\n[{name}]\n")
    lines += [f"{_key(k)} = {_literal(v)}\n" for k, v in literals]
    for key, value in nested:
        full = f"{name}.{_key(key)}" if name else _key(key)
        if _is_table(value):
            lines += _table_lines(value, full, aot=False)
        else:
            for item in value:
                lines += _table_lines(item, full, aot=True)
    return lines


def _key(key: str) -> str:
    return tomli_w.dumps({key: 0}).rsplit(" = ", 1)[0]


def _literal(value: Any) -> str:
    if _is_reference(value):
        ((kind, text),) = value.items()
        return f"{{ {kind} = {_literal(text)} }}"
    if isinstance(value, list) and any(_is_reference(v) for v in value):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_literal(v)}" for k, v in value.items()) + " }"
    return tomli_w.dumps({"v": value}).removeprefix("v = ").removesuffix("\n")
