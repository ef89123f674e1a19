"""The group list format shared by file_sd files and HTTP SD responses.

A list of ``{"targets": ["host:port", ...], "labels": {"name": "value"}}``
objects; each error names the group's index and the offending key.
"""

from __future__ import annotations

from typing import Any

from rwconsole.labels import is_valid_label_name
from rwconsole.sources.discovery.common import ADDRESS_LABEL, DiscoveryError, TargetGroup


def parse_groups(data: Any, source_prefix: str, meta: dict[str, str]) -> list[TargetGroup]:
    """Groups from decoded JSON/YAML; sources are ``<prefix>:<index>``, ``meta`` added to labels."""
    if data is None:
        return []
    if not isinstance(data, list):
        raise DiscoveryError(f"expected a list of target groups, got {_kind(data)}")
    groups: list[TargetGroup] = []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise DiscoveryError(f"group {index}: expected an object, got {_kind(item)}")
        unknown = sorted(set(item) - {"targets", "labels"})
        if unknown:
            raise DiscoveryError(f"group {index}: unknown key {unknown[0]!r}")
        targets = item.get("targets") or []
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise DiscoveryError(f"group {index}: targets must be a list of strings")
        labels = item.get("labels") or {}
        if not isinstance(labels, dict):
            raise DiscoveryError(f"group {index}: labels must be an object")
        for name, value in labels.items():
            if not isinstance(name, str) or not is_valid_label_name(name):
                raise DiscoveryError(f"group {index}: invalid label name {name!r}")
            if not isinstance(value, str):
                raise DiscoveryError(f"group {index}: label {name!r} must be a string")
        groups.append(
            TargetGroup(
                f"{source_prefix}:{index}",
                [{ADDRESS_LABEL: t} for t in targets],
                {**labels, **meta},
            )
        )
    return groups


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string"}
    return names.get(type(value), type(value).__name__)
