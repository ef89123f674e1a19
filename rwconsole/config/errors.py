"""Configuration errors: every problem of a file, each with its key path.

A key path is a tuple such as ``("endpoint", 1, "queue_config", "max_shards")``
and is shown as ``endpoint[1].queue_config.max_shards``; keys that are not bare
TOML keys are quoted (``headers."X Custom"``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

KeyPath = tuple[str | int, ...]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def format_path(path: Sequence[str | int]) -> str:
    """Format a key path as ``endpoint[1].queue_config.max_shards``."""
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
            continue
        text = part if _BARE_KEY.match(part) else '"' + part.replace('"', '\\"') + '"'
        out.append(("." if out else "") + text)
    return "".join(out)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config file."""

    path: KeyPath
    message: str
    line: int | None = None
    column: int | None = None

    def describe(self) -> str:
        where = format_path(self.path)
        if self.line is not None:
            position = f"line {self.line}" + (f", column {self.column}" if self.column else "")
            where = f"{where} ({position})" if where else position
        return f"{where}: {self.message}" if where else self.message


class ConfigError(Exception):
    """A config file is invalid; ``problems`` holds every problem found."""

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__(self._text())

    def _text(self) -> str:
        count = len(self.problems)
        head = f"{self.source}: {count} problem{'s' if count != 1 else ''} in the configuration"
        lines = [head] + [f"  {self.source}: {p.describe()}" for p in self.problems]
        return "\n".join(lines)

    def lines(self) -> list[str]:
        """One ``file: key.path: message`` line per problem."""
        return [f"{self.source}: {p.describe()}" for p in self.problems]


class ConfigFileError(Exception):
    """The config file itself cannot be read (missing, a directory, no permission)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")
