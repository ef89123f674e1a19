"""Console themes: TOML theme files, where they are found, and the remembered choice.

A theme file holds Textual theme colours::

    name = "rwconsole-dark"
    dark = true
    primary = "#4ea1ff"
    background = "#10141a"
    ...
    [variables]            # optional extra Textual CSS variables
    footer-key-foreground = "#4ea1ff"

Files are read from, in order (a later file with the same ``name`` wins):
the copy shipped inside the package, the repository's ``themes/`` directory
when running from a checkout, and the user's directory (``--theme-dir`` or
``$RWCONSOLE_THEME_DIR``). The chosen theme is remembered in
``console.toml`` under ``$RWCONSOLE_CONFIG_DIR``, else
``$XDG_CONFIG_HOME/rwconsole``, else ``~/.config/rwconsole``.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import tomli_w
from textual.color import Color, ColorParseError
from textual.theme import Theme

DEFAULT_THEME = "rwconsole-dark"
STATE_FILE = "console.toml"
THEME_DIR_ENV = "RWCONSOLE_THEME_DIR"
CONFIG_DIR_ENV = "RWCONSOLE_CONFIG_DIR"

_COLOUR_KEYS = (
    "primary",
    "secondary",
    "warning",
    "error",
    "success",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
)
_PACKAGE_THEMES = Path(__file__).resolve().parent / "themes"
_REPO_THEMES = Path(__file__).resolve().parent.parent.parent / "themes"


@dataclass(frozen=True, slots=True)
class ThemeProblem:
    """A theme file that could not be used, and why."""

    path: Path
    message: str

    def __str__(self) -> str:
        return f"theme file {self.path}: {self.message}"


def theme_dirs(user_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Directories searched for theme files, lowest precedence first."""
    dirs = [_PACKAGE_THEMES, _REPO_THEMES]
    chosen = user_dir if user_dir is not None else os.environ.get(THEME_DIR_ENV)
    if chosen:
        dirs.append(Path(chosen).expanduser())
    return dirs


def parse_theme(path: Path) -> Theme:
    """Read one theme file; raises ``ValueError`` with a message naming the key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"invalid TOML: {err}") from None
    except OSError as err:
        raise ValueError(err.strerror or str(err)) from None
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("'name' must be a non-empty string")
    if "primary" not in data:
        raise ValueError("'primary' is required")
    colours: dict[str, str] = {}
    for key in _COLOUR_KEYS:
        if key in data:
            colours[key] = _colour(data[key], key)
    known = {"name", "dark", "variables", *_COLOUR_KEYS}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown key(s): {', '.join(unknown)}")
    dark = data.get("dark", True)
    if not isinstance(dark, bool):
        raise ValueError("'dark' must be true or false")
    variables = data.get("variables", {})
    if not isinstance(variables, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in variables.items()
    ):
        raise ValueError("[variables] must map names to strings")
    return Theme(name=name.strip(), dark=dark, variables=dict(variables), **colours)


def _colour(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"'{key}' must be a colour string such as \"#1e90ff\"")
    try:
        Color.parse(value)
    except ColorParseError:
        raise ValueError(f"'{key}': {value!r} is not a colour") from None
    return value


def load_themes(
    user_dir: str | os.PathLike[str] | None = None,
) -> tuple[dict[str, Theme], list[ThemeProblem]]:
    """All themes by name, and the files that could not be used."""
    themes: dict[str, Theme] = {}
    problems: list[ThemeProblem] = []
    for directory in theme_dirs(user_dir):
        if not directory.is_dir():
            if directory not in (_PACKAGE_THEMES, _REPO_THEMES):
                problems.append(ThemeProblem(directory, "not a directory"))
            continue
        for path in sorted(directory.glob("*.toml")):
            try:
                theme = parse_theme(path)
            except ValueError as err:
                problems.append(ThemeProblem(path, str(err)))
                continue
            themes[theme.name] = theme
    return themes, problems


# ---- remembered choice -------------------------------------------------------------------


def config_dir() -> Path:
    """Where the console keeps its small state file."""
    explicit = os.environ.get(CONFIG_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "rwconsole"


def saved_theme() -> str | None:
    """The theme chosen last time, if any was saved and the file is readable."""
    path = config_dir() / STATE_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return None
    theme = data.get("theme")
    return theme if isinstance(theme, str) else None


def save_theme(name: str) -> str | None:
    """Remember ``name``; returns an error message instead of raising."""
    directory = config_dir()
    path = directory / STATE_FILE
    try:
        directory.mkdir(parents=True, exist_ok=True)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            data = {}
        data["theme"] = name
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".console-", suffix=".toml")
        with os.fdopen(fd, "wb") as handle:
            tomli_w.dump(data, handle)
        os.replace(tmp, path)
    except OSError as err:
        return f"cannot remember the theme in {path}: {err.strerror or err}"
    return None
