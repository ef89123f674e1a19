"""Turn a parsed TOML document into schema dataclasses, collecting type problems.

Conversion is driven by the dataclasses' type hints and field metadata, so the
schema stays the single description of the format. Every problem is recorded
(unknown keys with a did-you-mean hint, wrong types, missing required keys)
and conversion continues with the default value, so one pass reports them all.
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, fields, is_dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from rwconsole.config import schema
from rwconsole.config.durations import DurationError, parse_duration
from rwconsole.config.errors import KeyPath, Problem, format_path
from rwconsole.config.secrets import Secret
from rwconsole.config.sizes import SizeError, parse_size

# Alloy arguments and blocks that exist upstream but that rwconsole does not implement:
# rejected with a specific message instead of "unknown key".
_ALLOY_ONLY: dict[type, tuple[str, ...]] = {
    schema.EndpointConfig: ("round_robin_dns", "google_iam"),
    schema.AzureADConfig: ("workload_identity", "scope"),
    schema.OAuth2Config: (
        "grant_type",
        "audience",
        "claims",
        "client_certificate_key",
        "client_certificate_key_file",
        "client_certificate_key_id",
        "iss",
        "signature_algorithm",
    ),
}


@dataclass
class BuildContext:
    """State shared while building one file."""

    problems: list[Problem]
    base_dir: Path | None


def build_config(raw: Mapping[str, Any], ctx: BuildContext) -> schema.Config:
    """Build the top-level ``Config`` from a parsed TOML document."""
    return _build_dataclass(schema.Config, raw, (), ctx)


def dataclass_for_path(path: KeyPath) -> tuple[type | None, Field[Any] | None]:
    """The dataclass and field that a key path ends in (``(None, None)`` if unknown).

    Used by the saver to know, e.g., that ``queue_config.min_backoff`` is a duration.
    """
    cls: Any = schema.Config
    current: Field[Any] | None = None
    hint: Any = schema.Config
    for part in path:
        if isinstance(part, int):
            origin = typing.get_origin(hint)
            if origin is not list:
                return None, None
            hint = typing.get_args(hint)[0]
            continue
        inner = _unwrap_optional(hint)
        if typing.get_origin(inner) is dict:
            hint = typing.get_args(inner)[1]
            current = None
            continue
        if not (isinstance(inner, type) and is_dataclass(inner)):
            return None, None
        cls = inner
        match = [f for f in fields(cls) if f.name == part]
        if not match:
            return None, None
        current = match[0]
        hint = _hints(cls)[part]
    return cls, current


# --- dataclass building -----------------------------------------------------------------


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build_dataclass(cls: type, raw: Mapping[str, Any], path: KeyPath, ctx: BuildContext) -> Any:
    known = {f.name: f for f in fields(cls)}
    for key in raw:
        if key not in known:
            ctx.problems.append(Problem((*path, key), _unknown_key_message(cls, key, known)))
    values: dict[str, Any] = {}
    for name, f in known.items():
        key_path = (*path, name)
        if name in raw:
            converted = _convert(raw[name], _hints(cls)[name], f, key_path, ctx)
            if converted is not _INVALID:
                values[name] = converted
        elif f.metadata.get("required"):
            ctx.problems.append(Problem(key_path, "is required"))
    instance = cls(**values)
    post = _POST_BUILD.get(cls)
    return post(instance, raw) if post else instance


def _unknown_key_message(cls: type, key: str, known: Mapping[str, Any]) -> str:
    if key in _ALLOY_ONLY.get(cls, ()):
        return "is an Alloy setting that rwconsole does not support"
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown key{hint}"


def _scrape_post_build(instance: Any, raw: Mapping[str, Any]) -> Any:
    # Like Prometheus: an unset scrape_timeout never exceeds the interval.
    if "scrape_timeout" not in raw and instance.scrape_timeout > instance.scrape_interval:
        return replace(instance, scrape_timeout=instance.scrape_interval)
    return instance


_POST_BUILD: dict[type, Callable[[Any, Mapping[str, Any]], Any]] = {
    schema.ScrapeConfig: _scrape_post_build,
}


# --- values -----------------------------------------------------------------------------

_INVALID: Any = object()


def _convert(value: Any, hint: Any, f: Field[Any], path: KeyPath, ctx: BuildContext) -> Any:
    inner = _unwrap_optional(hint)
    origin = typing.get_origin(inner)
    if f.metadata.get("kind") == "duration" and path[-1] == f.name:
        return _convert_duration(value, path, ctx)
    if f.metadata.get("kind") == "size" and path[-1] == f.name:
        return _convert_size(value, path, ctx)
    if inner is Secret:
        return _convert_secret(value, path, ctx)
    if isinstance(inner, type) and is_dataclass(inner):
        if not isinstance(value, dict):
            return _bad(path, f"expected a table ([{format_path(path)}])", value, ctx)
        return _build_dataclass(inner, value, path, ctx)
    if origin is list:
        return _convert_list(value, typing.get_args(inner)[0], f, path, ctx)
    if origin is dict:
        if not isinstance(value, dict):
            return _bad(path, "expected a table", value, ctx)
        item_hint = typing.get_args(inner)[1]
        out = {}
        for key, item in value.items():
            converted = _convert(item, item_hint, f, (*path, key), ctx)
            if converted is not _INVALID and converted is not None:
                out[key] = converted
        return out
    return _convert_scalar(value, inner, path, ctx)


def _convert_list(
    value: Any, item_hint: Any, f: Field[Any], path: KeyPath, ctx: BuildContext
) -> Any:
    is_tables = isinstance(item_hint, type) and is_dataclass(item_hint)
    if not isinstance(value, list):
        if is_tables and isinstance(value, dict):
            name = format_path(path)
            return _bad(
                path, f"expected an array of tables [[{name}]], got a single table", None, ctx
            )
        return _bad(path, "expected an array", value, ctx)
    out = []
    for index, item in enumerate(value):
        converted = _convert(item, item_hint, f, (*path, index), ctx)
        if converted is not _INVALID and converted is not None:
            out.append(converted)
    return out


def _convert_scalar(value: Any, hint: Any, path: KeyPath, ctx: BuildContext) -> Any:
    if hint is bool:
        return (
            value if isinstance(value, bool) else _bad(path, "expected true or false", value, ctx)
        )
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return _bad(path, "expected an integer", value, ctx)
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return _bad(path, "expected a number", value, ctx)
    if hint is str:
        return value if isinstance(value, str) else _bad(path, "expected a string", value, ctx)
    raise TypeError(f"schema type {hint!r} at {format_path(path)} is not supported")


def _convert_duration(value: Any, path: KeyPath, ctx: BuildContext) -> Any:
    if not isinstance(value, str):
        return _bad(path, 'expected a duration like "30s"', value, ctx)
    return _parsed(
        parse_duration, value, path, ctx, '(expected e.g. "30s", "5m", "1h30m", "250ms")'
    )


def _convert_size(value: Any, path: KeyPath, ctx: BuildContext) -> Any:
    if not isinstance(value, (int, str)) or isinstance(value, bool):
        return _bad(path, 'expected a size like "512MiB" or a number of bytes', value, ctx)
    return _parsed(parse_size, value, path, ctx, '(expected e.g. "512MiB", "20GB", 1048576)')


def _parsed(
    parse: Callable[[Any], Any], value: Any, path: KeyPath, ctx: BuildContext, hint: str
) -> Any:
    """``parse(value)``, or a problem naming ``path`` with the parser's reason and ``hint``."""
    try:
        return parse(value)
    except (DurationError, SizeError) as exc:
        ctx.problems.append(Problem(path, f"{exc} {hint}"))
        return _INVALID


def _convert_secret(value: Any, path: KeyPath, ctx: BuildContext) -> Any:
    key_path = format_path(path)
    if isinstance(value, str):
        return Secret(value, key_path=key_path) if value else None
    if isinstance(value, dict):
        keys = sorted(value)
        if keys in (["env"], ["file"]) and isinstance(value[keys[0]], str) and value[keys[0]]:
            if keys == ["env"]:
                return Secret.from_env(value["env"], key_path=key_path)
            return Secret.from_file(value["file"], key_path=key_path, base_dir=ctx.base_dir)
    # Never echo what was written: it may be the secret itself.
    ctx.problems.append(
        Problem(
            path,
            'expected a secret: a string, { env = "VARIABLE" } or { file = "path" }, '
            f"got {_kind_of(value)}",
        )
    )
    return _INVALID


def _bad(path: KeyPath, expected: str, value: Any, ctx: BuildContext) -> Any:
    got = "" if value is None else f", got {_describe(value)}"
    ctx.problems.append(Problem(path, expected + got))
    return _INVALID


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, (str, int, float)):
        return json.dumps(value)
    return f"a {type(value).__name__}"


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, dict):
        return "a table with keys " + ", ".join(sorted(map(str, value))) if value else "a table"
    return _describe(value) if isinstance(value, list) else f"a {type(value).__name__}"


def _unwrap_optional(hint: Any) -> Any:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def default_of(f: Field[Any]) -> Any:
    """The default value of a schema field."""
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None
