"""Write config changes back to the file, and show the effective config.

``update_config_file`` edits the file's *raw* TOML document, so everything the
user wrote stays as written — including secrets given as values, ``{ env = … }``
or ``{ file = … }`` references — and only the changed keys differ. Because the
document is rewritten with tomli-w, **comments and the original layout are not
kept** (tomli-w has no comment support): the saved file holds the same settings,
formatted canonically. The result is validated with the loader before it
replaces the file, and the replacement is atomic (a temporary file in the same
directory, fsync, rename, fsync of the directory), so a crash leaves either the
old or the new file, never a mix.

``dump_effective`` gives the effective configuration as plain data (defaults
filled, durations as strings, secrets redacted) for ``check-config`` and the
console.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import Field, fields, is_dataclass
from pathlib import Path
from typing import Any

import tomli_w

from rwconsole.config import schema
from rwconsole.config._build import dataclass_for_path, default_of
from rwconsole.config.durations import format_duration
from rwconsole.config.errors import ConfigError, KeyPath, Problem
from rwconsole.config.load import config_from_dict, parse_toml, read_config_text
from rwconsole.config.secrets import REDACTED, Secret, redact_url

_DELETE = object()


def update_config_file(path: str | Path, changes: Mapping[KeyPath, object]) -> None:
    """Apply ``changes`` (key path → new value; ``None`` deletes the key) to the file.

    Example: ``{("endpoint", 0, "queue_config", "max_shards"): 20}``. Duration
    fields take float seconds and are written as strings (``"1m30s"``); a
    ``Secret`` value is written as its reference, or as its literal value when
    it is one; dataclass values are written with only their non-default keys.
    Raises ``ConfigError`` (file unchanged) when the result would be invalid,
    ``ConfigFileError`` when the file cannot be read. Comments are not kept.
    """
    source = str(path)
    raw = parse_toml(read_config_text(path), source)
    for key_path, value in changes.items():
        _apply(raw, tuple(key_path), value, source)
    text = tomli_w.dumps(raw)
    config_from_dict(
        parse_toml(text, source), source, check_secrets=False, base_dir=Path(path).parent
    )
    atomic_write(Path(path), text)


def dump_effective(config: Any, redact: bool = True) -> dict[str, Any]:
    """The effective configuration as TOML-ready data.

    Defaults are filled in; unset values (empty strings, empty tables and
    arrays, absent blocks) are left out; durations are strings. With
    ``redact`` (the default) secrets written literally become ``"<secret>"``;
    env/file references are always shown as the reference (``{"env": "VAR"}``),
    never resolved.
    """
    result = _plain(config, redact)
    return result if isinstance(result, dict) else {}


# --- dumping ----------------------------------------------------------------------------


def _plain(value: Any, redact: bool, f: Field[Any] | None = None) -> Any:
    if isinstance(value, Secret):
        reference = value.reference
        if reference is not None:
            return dict(reference)
        return REDACTED if redact else value.reveal()
    if is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for item in schema.ordered_fields(value):
            converted = _plain(getattr(value, item.name), redact, item)
            if not _is_unset(converted):
                out[item.name] = converted
        return out
    if isinstance(value, dict):
        return {k: v for k, v in ((k, _plain(v, redact, f)) for k, v in value.items())}
    if isinstance(value, list):
        return [_plain(v, redact, f) for v in value]
    if f is not None and f.metadata.get("kind") == "duration" and isinstance(value, float):
        return format_duration(value)
    if redact and f is not None and f.name.endswith("url") and isinstance(value, str):
        return redact_url(value)
    return value


def _is_unset(value: Any) -> bool:
    return value is None or (isinstance(value, (str, dict, list)) and len(value) == 0)


def _raw_value(value: Any, f: Field[Any] | None) -> Any:
    """A value as it is written into the file (literal secrets included)."""
    if value is None:
        return _DELETE
    if isinstance(value, Secret):
        return dict(value.reference) if value.reference is not None else value.reveal()
    if is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for item in fields(value):
            current = getattr(value, item.name)
            if current == default_of(item) or current is None:
                continue
            out[item.name] = _raw_value(current, item)
        return out
    if isinstance(value, Mapping):
        return {str(k): _raw_value(v, f) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_raw_value(v, f) for v in value]
    if (
        f is not None
        and f.metadata.get("kind") == "duration"
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
    ):
        return format_duration(float(value))
    return value


# --- editing the raw document -----------------------------------------------------------


def _apply(raw: dict[str, Any], key_path: KeyPath, value: object, source: str) -> None:
    if not key_path or not isinstance(key_path[-1], str):
        raise ConfigError(source, [Problem(key_path, "a change must name a key")])
    _, f = dataclass_for_path(key_path)
    new_value = _raw_value(value, f)
    container: Any = raw
    for index, part in enumerate(key_path[:-1]):
        upcoming = key_path[index + 1]
        if isinstance(part, int):
            if not isinstance(container, list) or not 0 <= part <= len(container):
                raise ConfigError(source, [Problem(key_path[: index + 1], "no such entry")])
            if part == len(container):
                container.append({})
            container = container[part]
            continue
        if not isinstance(container, dict):
            raise ConfigError(source, [Problem(key_path[: index + 1], "is not a table")])
        if part not in container:
            if new_value is _DELETE:
                return
            container[part] = [] if isinstance(upcoming, int) else {}
        container = container[part]
    last = key_path[-1]
    if not isinstance(container, dict):
        raise ConfigError(source, [Problem(key_path[:-1], "is not a table")])
    if new_value is _DELETE:
        container.pop(last, None)
    else:
        container[last] = new_value


def atomic_write(path: Path, text: str) -> None:
    directory = path.parent if str(path.parent) else Path(".")
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o600
    fd, temp_name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, mode)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
