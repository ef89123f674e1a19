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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import yaml

from rwconsole.config import _prometheus_keys as keys
from rwconsole.config._prometheus_keys import (
    NOT_APPLICABLE,
    SCRAPE_DEFAULTS_TABLE,
    SCRAPE_EXTRAS,
    SCRAPE_LIMITS,
    Context,
    EnvSecret,
    PrometheusConfigError,
    Skipped,
)
from rwconsole.config.durations import format_duration_ns
from rwconsole.config.errors import KeyPath
from rwconsole.config.toml_text import dump_toml

__all__ = [
    "NOT_APPLICABLE",
    "SCRAPE_DEFAULTS_TABLE",
    "SCRAPE_EXTRAS",
    "SCRAPE_LIMITS",
    "EnvSecret",
    "ImportResult",
    "PrometheusConfigError",
    "PrometheusFileError",
    "Skipped",
    "convert_prometheus",
    "import_prometheus",
]

PROMETHEUS_DEFAULTS: dict[str, dict[str, Any]] = {
    "endpoint": {"send_exemplars": False},
    "queue_config": {"retry_on_http_429": False},
}
"""Prometheus defaults that differ from rwconsole's; written when the input leaves them unset."""

# --- results ------------------------------------------------------------------------


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
    ctx = Context(source, base_dir, inline_secrets, marks)
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
        return None if node.style is None and node.value in keys.NULLS else node.value
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


_DEFAULT_INTERVAL_NS = 60 * 10**9
_DEFAULT_TIMEOUT_NS = 10 * 10**9


# --- top level ------------------------------------------------------------------------


def _convert_root(data: Any, ctx: Context) -> dict[str, Any]:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ctx.error((), f"expected a mapping at the top level, got {keys.kind_of(data)}")
    out: dict[str, Any] = {}
    glob = keys.block(data.get("global") or {}, ("global",), ctx, keys.GLOBAL)
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
    endpoints = keys.list_of(_remote_write)(data.get("remote_write") or [], ("remote_write",), ctx)
    if endpoints:
        out["endpoint"] = endpoints
    jobs = [
        _scrape(job, ("scrape_configs", i), ctx, interval, timeout)
        for i, job in enumerate(_as_list(data.get("scrape_configs"), ("scrape_configs",), ctx))
    ]
    _check_unique_jobs(jobs, ctx)
    jobs = [job for i, job in enumerate(jobs) if _has_targets(job, ("scrape_configs", i), ctx)]
    if jobs:
        out["scrape"] = jobs
    for key in data:
        if key not in ("global", "remote_write", "scrape_configs"):
            ctx.skip((key,), NOT_APPLICABLE.get(key, "no rwconsole equivalent"))
    return out


def _as_list(value: Any, path: KeyPath, ctx: Context) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ctx.error(path, f"expected a list, got {keys.kind_of(value)}")
    return value


def _remote_write(value: Any, path: KeyPath, ctx: Context) -> dict[str, Any]:
    name = value.get("name") if isinstance(value, dict) else None
    ctx.scope = name if isinstance(name, str) and name else f"REMOTE_WRITE_{path[-1]}"
    endpoint = keys.block(value, path, ctx, keys.REMOTE_WRITE)
    if "url" not in endpoint:
        raise ctx.error(path, "url is required")
    _move_url_password(endpoint, (*path, "url"), ctx)
    for key, default in PROMETHEUS_DEFAULTS["endpoint"].items():
        endpoint.setdefault(key, default)
    queue = endpoint.setdefault("queue_config", {})
    for key, default in PROMETHEUS_DEFAULTS["queue_config"].items():
        queue.setdefault(key, default)
    return endpoint


def _move_url_password(endpoint: dict[str, Any], path: KeyPath, ctx: Context) -> None:
    """A password in the URL (``user:pass@host``) is an inline secret: it moves to basic_auth."""
    parts = urlsplit(endpoint["url"])
    if parts.password is None or ctx.inline_secrets or _has_auth(endpoint):
        return
    host = parts.netloc.rpartition("@")[2]
    endpoint["url"] = urlunsplit(parts._replace(netloc=host))
    endpoint["basic_auth"] = {
        "username": unquote(parts.username or ""),
        "password": {"env": ctx.env_variable(path, "PASSWORD")},
    }


def _has_auth(endpoint: dict[str, Any]) -> bool:
    methods = ("basic_auth", "authorization", "bearer_token", "oauth2", "sigv4", "azuread")
    return any(key in endpoint for key in methods)


def _scrape(value: Any, path: KeyPath, ctx: Context, interval: int, timeout: int) -> dict[str, Any]:
    job_name = value.get("job_name") if isinstance(value, dict) else None
    if not isinstance(job_name, str) or not job_name:
        raise ctx.error(path, "job_name is required")
    ctx.scope = job_name
    job = keys.block(value, path, ctx, keys.SCRAPE, unknown=_unknown_scrape_key)
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


def _has_targets(job: dict[str, Any], path: KeyPath, ctx: Context) -> bool:
    """Whether the job kept a target source; one without is left out (and reported)."""
    if any(key in job for key in keys.SERVICE_DISCOVERY):
        return True
    ctx.skip(path, f"job {job['job_name']!r} left out: no target source rwconsole supports")
    return False


def _unknown_scrape_key(key: str) -> str:
    if key.endswith("_sd_configs"):
        kind = key.removesuffix("_sd_configs")
        return f"rwconsole has no {kind} service discovery; the targets it finds are not scraped"
    return "no rwconsole equivalent"


def _check_unique_jobs(jobs: list[dict[str, Any]], ctx: Context) -> None:
    seen: set[str] = set()
    for i, job in enumerate(jobs):
        if job["job_name"] in seen:
            raise ctx.error(
                ("scrape_configs", i, "job_name"), f"duplicate job name {job['job_name']!r}"
            )
        seen.add(job["job_name"])
