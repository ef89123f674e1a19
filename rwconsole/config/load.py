"""Load a TOML config file into a validated ``Config``.

``parse_config`` and ``load_config`` raise ``ConfigError`` listing every problem
of the file (syntax error with line and column, unknown keys, wrong types,
rule violations, unresolvable secret references), each with its key path.
``load_config`` raises ``ConfigFileError`` when the file cannot be read at all.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from rwconsole.config import schema
from rwconsole.config._build import BuildContext, build_config
from rwconsole.config.errors import ConfigError, ConfigFileError, Problem
from rwconsole.config.validate import check_secret_references, validate

_POSITION = re.compile(r"^(?P<message>.*?)\s*\(at line (?P<line>\d+), column (?P<column>\d+)\)$")


def load_config(path: str | Path, *, check_secrets: bool = True) -> schema.Config:
    """Read, parse and validate the config file at ``path``."""
    text = read_config_text(path)
    return parse_config(text, str(path), check_secrets=check_secrets, base_dir=Path(path).parent)


def read_config_text(path: str | Path) -> str:
    """The text of a config file, or ``ConfigFileError`` with a clear reason."""
    file = Path(path)
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigFileError(str(path), "no such file") from None
    except IsADirectoryError:
        raise ConfigFileError(str(path), "is a directory, not a config file") from None
    except PermissionError:
        raise ConfigFileError(str(path), "permission denied") from None
    except UnicodeDecodeError as exc:
        raise ConfigFileError(str(path), f"not UTF-8 text (byte offset {exc.start})") from None
    except OSError as exc:
        raise ConfigFileError(str(path), exc.strerror or str(exc)) from None


def parse_toml(text: str, source_name: str) -> dict[str, Any]:
    """Parse TOML text, turning a syntax error into a ``ConfigError`` with its position."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _POSITION.match(message)
        if match:
            problem = Problem(
                (),
                f"TOML syntax error: {match['message']}",
                line=int(match["line"]),
                column=int(match["column"]),
            )
        else:
            problem = Problem((), f"TOML syntax error: {message}")
        raise ConfigError(source_name, [problem]) from None


def parse_config(
    text: str,
    source_name: str = "<config>",
    *,
    check_secrets: bool = True,
    base_dir: Path | None = None,
) -> schema.Config:
    """Parse and validate config ``text``; ``source_name`` names it in errors.

    ``base_dir`` anchors relative ``{ file = … }`` secret paths (default: the
    current directory). With ``check_secrets``, every env/file secret is resolved
    once so that a missing variable or file is reported now, not at first use.
    """
    raw = parse_toml(text, source_name)
    return config_from_dict(raw, source_name, check_secrets=check_secrets, base_dir=base_dir)


def config_from_dict(
    raw: dict[str, Any],
    source_name: str = "<config>",
    *,
    check_secrets: bool = True,
    base_dir: Path | None = None,
) -> schema.Config:
    """Build and validate a ``Config`` from an already parsed TOML document."""
    ctx = BuildContext(problems=[], base_dir=base_dir)
    config = build_config(raw, ctx)
    problems = list(ctx.problems)
    # A key that already has a type problem holds its default now; rules about it
    # would only repeat the problem in other words.
    reported = {p.path for p in problems}
    problems += [p for p in validate(config) if p.path not in reported]
    if check_secrets:
        reported = {p.path for p in problems}
        problems += [p for p in check_secret_references(config) if p.path not in reported]
    if problems:
        raise ConfigError(source_name, problems)
    return config
