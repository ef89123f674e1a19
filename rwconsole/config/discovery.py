"""Rules for the ``*_sd_configs`` tables of a ``[[scrape]]`` job.

``check_service_discovery`` is called by the config validator with itself as
``checks``, so the shared rules (host:port, label names, URLs, HTTP client
blocks) are reported the same way as everywhere else in the file.
"""

from __future__ import annotations

from typing import Any, Protocol

from rwconsole.config import schema
from rwconsole.config.durations import format_duration
from rwconsole.config.errors import KeyPath

FILE_EXTENSIONS = (".json", ".yml", ".yaml")
"""File endings file_sd reads (JSON, YAML)."""

ROLE_KINDS: dict[str, tuple[str, ...]] = {
    "node": ("node",),
    "pod": ("pod",),
    "service": ("service",),
    "endpoints": ("endpoints", "service", "pod"),
    "endpointslice": ("endpointslice", "service", "pod"),
    "ingress": ("ingress",),
}
"""The kinds of object each kubernetes_sd role watches (its selectors may name them)."""


class Checks(Protocol):
    """The validator methods used here."""

    def add(self, path: KeyPath, message: str) -> None: ...

    def host_port(self, address: str, path: KeyPath, *, need_host: bool) -> None: ...

    def labels(self, labels: dict[str, str], path: KeyPath) -> None: ...

    def url(self, raw_url: str, path: KeyPath, *, required: bool) -> None: ...

    def http_client(
        self, h: schema.HTTPClientConfig, path: KeyPath, extra_auth: dict[str, object]
    ) -> None: ...


def has_discovery(scrape: schema.ScrapeConfig) -> bool:
    """Whether the job has any ``*_configs`` target source besides ``targets``."""
    return bool(
        scrape.static_configs
        or scrape.file_sd_configs
        or scrape.http_sd_configs
        or scrape.dns_sd_configs
        or scrape.kubernetes_sd_configs
    )


def check_service_discovery(scrape: schema.ScrapeConfig, path: KeyPath, checks: Checks) -> None:
    """Report every problem of ``scrape``'s discovery tables through ``checks``."""
    for i, static in enumerate(scrape.static_configs):
        here = (*path, "static_configs", i)
        for j, target in enumerate(static.targets):
            checks.host_port(target, (*here, "targets", j), need_host=True)
        checks.labels(static.labels, (*here, "labels"))
    for i, file_sd in enumerate(scrape.file_sd_configs):
        _file(file_sd, (*path, "file_sd_configs", i), checks)
    for i, http_sd in enumerate(scrape.http_sd_configs):
        here = (*path, "http_sd_configs", i)
        checks.url(http_sd.url, (*here, "url"), required=True)
        _interval(http_sd.refresh_interval, (*here, "refresh_interval"), checks)
        checks.http_client(http_sd, here, {})
    for i, dns_sd in enumerate(scrape.dns_sd_configs):
        _dns(dns_sd, (*path, "dns_sd_configs", i), checks)
    for i, k8s in enumerate(scrape.kubernetes_sd_configs):
        _kubernetes(k8s, (*path, "kubernetes_sd_configs", i), checks)


def _interval(seconds: float, path: KeyPath, checks: Checks) -> None:
    if seconds <= 0:
        checks.add(path, f"must be greater than 0s, got {format_duration(seconds)}")


def _file(file_sd: schema.FileSDConfig, path: KeyPath, checks: Checks) -> None:
    if not file_sd.files:
        checks.add((*path, "files"), "must list at least one file or glob")
    for j, pattern in enumerate(file_sd.files):
        if not pattern.endswith(FILE_EXTENSIONS):
            checks.add(
                (*path, "files", j),
                f"{pattern!r} must end in one of {', '.join(FILE_EXTENSIONS)}",
            )
    _interval(file_sd.refresh_interval, (*path, "refresh_interval"), checks)


def _dns(dns_sd: schema.DNSSDConfig, path: KeyPath, checks: Checks) -> None:
    if not dns_sd.names:
        checks.add((*path, "names"), "must list at least one DNS name")
    for j, name in enumerate(dns_sd.names):
        if not name.strip():
            checks.add((*path, "names", j), "must not be empty")
    if dns_sd.type.upper() not in schema.SD_DNS_TYPES:
        checks.add(
            (*path, "type"),
            f"must be one of {', '.join(schema.SD_DNS_TYPES)}, got {dns_sd.type!r}",
        )
    elif dns_sd.type.upper() != "SRV" and not 0 < dns_sd.port <= 65535:
        checks.add((*path, "port"), f"must be 1..65535 for {dns_sd.type} records")
    _interval(dns_sd.refresh_interval, (*path, "refresh_interval"), checks)


def _kubernetes(k8s: schema.KubernetesSDConfig, path: KeyPath, checks: Checks) -> None:
    if k8s.role not in schema.SD_KUBERNETES_ROLES:
        checks.add(
            (*path, "role"),
            f"must be one of {', '.join(schema.SD_KUBERNETES_ROLES)}, got {k8s.role!r}",
        )
    if k8s.api_server and k8s.kubeconfig_file:
        checks.add(path, "api_server and kubeconfig_file are mutually exclusive")
    if k8s.api_server:
        checks.url(k8s.api_server, (*path, "api_server"), required=True)
    custom = _custom_http_keys(k8s)
    if custom and not k8s.api_server:
        where = "kubeconfig_file" if k8s.kubeconfig_file else "in-cluster configuration"
        checks.add(
            (*path, custom[0]),
            f"HTTP client settings need api_server (with {where} they come from there)",
        )
    checks.http_client(k8s, path, {})
    seen: set[str] = set()
    allowed = ROLE_KINDS.get(k8s.role, ())  # a selector can narrow what the role watches
    for j, selector in enumerate(k8s.selectors):
        here = (*path, "selectors", j, "role")
        if selector.role in seen:
            checks.add(here, f"duplicate selector role {selector.role!r}")
        seen.add(selector.role)
        if allowed and selector.role not in allowed:
            checks.add(
                here,
                f"role {k8s.role!r} accepts selectors for {', '.join(allowed)}, "
                f"got {selector.role!r}",
            )


def _custom_http_keys(config: Any) -> list[str]:
    default = schema.HTTPClientConfig()
    return [
        name
        for name in (
            "bearer_token",
            "bearer_token_file",
            "basic_auth",
            "authorization",
            "oauth2",
            "tls_config",
            "http_headers",
        )
        if getattr(config, name) != getattr(default, name)
    ]
