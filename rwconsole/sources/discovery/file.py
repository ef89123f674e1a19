"""``file_sd_configs``: target groups read from JSON or YAML files matched by globs.

Sources are ``<path>:<index>`` and every group gets ``__meta_filepath``, as in
Prometheus. The files are read again every ``refresh_interval`` and whenever
one of them changes: the matched paths and their (mtime, size) are polled
every ``watch_interval`` seconds (a stat per file, no reading). A file that
cannot be read or parsed keeps its last good groups, and ``error`` says which
file and why (line and column for syntax errors).
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
from collections.abc import Sequence
from typing import Any

import yaml

from rwconsole.config.discovery import FILE_EXTENSIONS
from rwconsole.sources.discovery.common import DiscoveryError, PeriodicDiscoverer, TargetGroup
from rwconsole.sources.discovery.groups_json import parse_groups

DEFAULT_WATCH_INTERVAL = 1.0
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Fingerprint = dict[str, tuple[int, int]]


class FileDiscoverer(PeriodicDiscoverer):
    """One ``file_sd_configs`` entry."""

    def __init__(
        self,
        patterns: Sequence[str],
        refresh_interval: float,
        *,
        watch_interval: float = DEFAULT_WATCH_INTERVAL,
    ) -> None:
        super().__init__(refresh_interval)
        self._patterns = list(patterns)
        self._watch_interval = watch_interval
        self._last_good: dict[str, list[TargetGroup]] = {}
        self._seen: Fingerprint = {}

    async def refresh(self) -> list[TargetGroup]:
        fingerprint = self._fingerprint()
        problems: list[str] = []
        last_good: dict[str, list[TargetGroup]] = {}
        for path in fingerprint:
            try:
                last_good[path] = read_file_groups(path)
            except (OSError, DiscoveryError) as exc:
                problems.append(_describe(path, exc))
                if path in self._last_good:
                    last_good[path] = self._last_good[path]
        self._last_good = last_good
        self._seen = fingerprint
        self.error = "; ".join(problems)
        return [group for groups in last_good.values() for group in groups]

    async def wait_for_change(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            await asyncio.sleep(min(self._watch_interval, left))
            if self._fingerprint() != self._seen:
                return

    def _fingerprint(self) -> Fingerprint:
        found: Fingerprint = {}
        for pattern in self._patterns:
            for path in sorted(glob.glob(pattern)):
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                found[path] = (st.st_mtime_ns, st.st_size)
        return found


def read_file_groups(path: str) -> list[TargetGroup]:
    """The groups of one file (``DiscoveryError``/``OSError`` when unreadable or invalid)."""
    with open(path, "rb") as handle:
        raw = handle.read()
    if path.endswith(".json"):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DiscoveryError(f"line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
        except UnicodeDecodeError as exc:
            raise DiscoveryError(f"byte {exc.start}: not UTF-8") from None
    elif path.endswith((".yml", ".yaml")):
        try:
            data = yaml.load(raw, Loader=_YAML_LOADER)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            raise DiscoveryError(f"{where}{exc.problem or exc}") from None
        except yaml.YAMLError as exc:
            raise DiscoveryError(str(exc)) from None
    else:
        raise DiscoveryError(f"unknown file extension (want one of {', '.join(FILE_EXTENSIONS)})")
    return parse_groups(data, path, {"__meta_filepath": path})


def _describe(path: str, exc: Exception) -> str:
    if isinstance(exc, OSError):
        return f"{path}: {exc.strerror or exc}"
    return f"{path}: {exc}"
