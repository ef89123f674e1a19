"""Prometheus' ``/api/v1/targets`` and ``/api/v1/targets/metadata``, read by the engine.

``api_response(path, query, manager)`` answers both API paths with Prometheus'
JSON shapes (``status``/``data``, ``activeTargets``/``droppedTargets`` with
``discoveredLabels``, ``labels``, ``scrapePool``, ``scrapeUrl``, ``lastError``,
``lastScrape``, ``lastScrapeDuration``, ``health``; metadata entries with
``target``, ``metric``, ``type``, ``help``, ``unit``) and their query
parameters (``state``, ``scrapePool``; ``match_target``, ``metric``,
``limit``). The engine builds the console's view of the targets from the same
manager, plus the rule that dropped a target.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from rwconsole.config.durations import format_duration
from rwconsole.labels import Labels
from rwconsole.model import MetricType
from rwconsole.selector import SelectorError, parse_selector
from rwconsole.sources.scrape import ScrapeManager

TARGETS_PATH = "/api/v1/targets"
METADATA_PATH = "/api/v1/targets/metadata"
_ZERO_TIME = "0001-01-01T00:00:00Z"


def find_manager(sources: Iterable[Any]) -> ScrapeManager | None:
    return next((s for s in sources if isinstance(s, ScrapeManager)), None)


def api_response(path: str, query: str, manager: ScrapeManager | None) -> tuple[int, bytes]:
    """(HTTP status, JSON body) for one of the two paths (404 for any other)."""
    params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    if path == TARGETS_PATH:
        return 200, _ok(_targets(manager, params))
    if path == METADATA_PATH:
        try:
            return 200, _ok(_metadata(manager, params))
        except ValueError as exc:
            return 400, _error("bad_data", str(exc))
    return 404, _error("not_found", f"unknown path {path}")


def _targets(manager: ScrapeManager | None, params: dict[str, str]) -> dict[str, Any]:
    state = params.get("state", "any").lower()
    pool = params.get("scrapePool", "")
    active: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    if manager is not None:
        if state in ("", "any", "active"):
            for target, status in manager.active_targets():
                if pool and target.job != pool:
                    continue
                active.append(
                    {
                        "discoveredLabels": dict(target.discovered),
                        "labels": dict(target.series_labels),
                        "scrapePool": target.job,
                        "scrapeUrl": target.full_url,
                        "globalUrl": target.full_url,
                        "lastError": status.last_error,
                        "lastScrape": _time(status.last_scrape),
                        "lastScrapeDuration": status.last_duration,
                        "health": status.health,
                        "scrapeInterval": format_duration(target.interval),
                        "scrapeTimeout": format_duration(target.timeout),
                    }
                )
        if state in ("", "any", "dropped"):
            dropped = [
                {"discoveredLabels": dict(d.discovered)}
                for d in manager.dropped_targets()
                if not pool or d.job == pool
            ]
    return {"activeTargets": active, "droppedTargets": dropped}


def _metadata(manager: ScrapeManager | None, params: dict[str, str]) -> list[dict[str, Any]]:
    selector = None
    if params.get("match_target"):
        try:
            selector = parse_selector(params["match_target"])
        except SelectorError as exc:
            raise ValueError(f"match_target: {exc}") from None
    metric = params.get("metric", "")
    limit = _limit(params.get("limit", ""))
    result: list[dict[str, Any]] = []
    if manager is None:
        return result
    for target, families in manager.target_metadata():
        labels: Labels = target.series_labels
        if selector is not None and not selector.matches(labels):
            continue
        for name in sorted(families):
            if metric and name != metric:
                continue
            kind, unit, help_text = families[name]
            if limit is not None and len(result) >= limit:
                return result
            result.append(
                {
                    "target": dict(labels),
                    "metric": name,
                    "type": MetricType(kind).name.lower(),
                    "help": help_text,
                    "unit": unit,
                }
            )
    return result


def _limit(text: str) -> int | None:
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"limit: {text!r} is not a number") from None
    return None if value < 0 else value


def _time(seconds: float | None) -> str:
    if seconds is None:
        return _ZERO_TIME
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _ok(data: Any) -> bytes:
    return json.dumps({"status": "success", "data": data}).encode()


def _error(kind: str, message: str) -> bytes:
    return json.dumps({"status": "error", "errorType": kind, "error": message}).encode()
