"""``http_sd_configs``: target groups fetched from an HTTP endpoint (Prometheus' HTTP SD).

GET ``url`` every ``refresh_interval`` with ``Accept: application/json`` and
``X-Prometheus-Refresh-Interval-Seconds``; the answer must be 200 with a JSON
content type and a list of groups. Sources are ``<url>:<index>``; every group
gets ``__meta_url`` (a password in the URL is shown as ``<secret>``).
Authentication, TLS and proxies follow the HTTP client keys, as for an endpoint.
A failed refresh keeps the last good groups.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from rwconsole.config.secrets import redact_url
from rwconsole.sources.discovery.common import (
    DiscoveryError,
    PeriodicDiscoverer,
    TargetGroup,
    build_http_client,
    close_http_client,
    send,
)
from rwconsole.sources.discovery.groups_json import parse_groups

_JSON_CONTENT_TYPE = re.compile(r"^application/json(;.*)?$", re.IGNORECASE)
DEFAULT_TIMEOUT = 30.0


class HTTPDiscoverer(PeriodicDiscoverer):
    """One ``http_sd_configs`` entry (``config`` is an ``HTTPSDConfig``)."""

    def __init__(self, config: Any, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(config.refresh_interval)
        self._url = config.url
        self._shown_url = redact_url(config.url)
        self._config = config
        self._client, self._auth = build_http_client(config, timeout)

    async def refresh(self) -> list[TargetGroup]:
        request = self._client.build_request(
            "GET",
            self._url,
            headers={
                "Accept": "application/json",
                "X-Prometheus-Refresh-Interval-Seconds": _seconds(self.refresh_interval),
            },
        )
        await self._auth.apply(request)
        try:
            response = await send(self._client, request, self._config)
        except httpx.HTTPError as exc:
            raise DiscoveryError(f"{self._shown_url}: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise DiscoveryError(
                f"{self._shown_url}: server returned HTTP status {response.status_code}"
            )
        content_type = response.headers.get("content-type", "")
        if not _JSON_CONTENT_TYPE.match(content_type):
            raise DiscoveryError(
                f"{self._shown_url}: unsupported content type {content_type!r} "
                "(want application/json)"
            )
        try:
            data = json.loads(response.content)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DiscoveryError(f"{self._shown_url}: invalid JSON: {exc}") from None
        try:
            return parse_groups(data, self._shown_url, {"__meta_url": self._shown_url})
        except DiscoveryError as exc:
            raise DiscoveryError(f"{self._shown_url}: {exc}") from None

    async def close(self) -> None:
        await close_http_client(self._client, self._auth)


def _seconds(value: float) -> str:
    return f"{value:f}".rstrip("0").rstrip(".")
