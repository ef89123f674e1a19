"""The import layering docs/architecture.md states, checked on the source.

Every ``import`` and ``from … import`` in ``rwconsole`` (also those inside
functions) is read with ``ast``; each package may import only the packages its
row of the table allows. Command modules (the ``cli`` of a package, the entry
point, the runner, the console's launcher) wire layers together and are
checked by their own, wider row.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import rwconsole

ROOT = Path(rwconsole.__file__).parent

BASE = {"labels", "regex", "exitcodes"}
"""Leaf modules any layer may use."""

ALLOWED: dict[str, set[str]] = {
    "labels": set(),
    "regex": set(),
    "exitcodes": set(),
    "datadir": set(),
    "metrics": BASE,
    "model": BASE,
    "relabel": BASE,
    "selector": BASE,
    "config": BASE | {"relabel"},
    "http": BASE | {"config", "metrics"},
    "protocol": BASE | {"config", "model"},
    "wal": BASE | {"model", "selector", "datadir"},
    "snapshot": BASE | {"model"},
    "remote": BASE | {"config", "http", "metrics", "model", "protocol", "relabel", "wal"},
    "sources": BASE
    | {"config", "http", "metrics", "model", "protocol", "relabel", "selector", "wal"},
    "demo": BASE | {"config", "http", "model", "protocol", "snapshot", "sources"},
    "pipelines": BASE | {"config"},
    "logcollapse": BASE,
    "diskwatch": BASE | {"snapshot", "wal"},
    "reload": BASE | {"config"},
    "engine_reload": BASE
    | {"config", "engine", "metrics", "reload", "remote", "snapshot", "sources"},
    "shardhistory": BASE | {"config", "snapshot"},
    "engine": BASE
    | {
        "config",
        "datadir",
        "admin",
        "demo",
        "diskwatch",
        "engine_reload",
        "http",
        "logcollapse",
        "metrics",
        "model",
        "protocol",
        "relabel",
        "remote",
        "shardhistory",
        "snapshot",
        "sources",
        "wal",
    },
    "admin": BASE | {"config", "datadir", "http", "selector", "snapshot", "sources", "wal"},
    "tui": BASE | {"config", "datadir", "selector", "snapshot", "wal"},
    "peer": BASE | {"config", "http", "snapshot", "sources"},
}
"""Package (first name under ``rwconsole``) → the packages it may import."""

COMMANDS = {
    "rwconsole.__main__",
    "rwconsole.cli",
    "rwconsole.commands",
    "rwconsole.runner",
    "rwconsole.admin.ctl",
    "rwconsole.config.cli",
    "rwconsole.wal.cli",
    "rwconsole.tui.launch",
}
"""Modules that wire layers together for a command; they may import any layer."""


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if "proto" in parts:
            continue  # generated protobuf classes
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def _imported_packages(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "rwconsole":  # ``from rwconsole import wal`` (not __version__)
                names = [f"rwconsole.{a.name}" for a in node.names if _is_module(a.name)]
        for name in names:
            parts = name.split(".")
            if parts[0] == "rwconsole" and len(parts) > 1:
                found.add(parts[1])
    return found


def _is_module(name: str) -> bool:
    return (ROOT / name).is_dir() or (ROOT / f"{name}.py").is_file()


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_package_has_a_row() -> None:
    packages = {_package(name) for name, _ in _modules()} - {""}
    missing = sorted(p for p in packages if p not in ALLOWED and f"rwconsole.{p}" not in COMMANDS)
    assert missing == [], f"packages without a layering rule: {missing}"


@pytest.mark.parametrize(
    ("module", "path"),
    [(name, path) for name, path in _modules() if name not in COMMANDS and _package(name)],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_imports_follow_the_layers(module: str, path: Path) -> None:
    package = _package(module)
    allowed = ALLOWED[package] | {package}
    wrong = sorted(_imported_packages(path) - allowed)
    assert wrong == [], f"{module} imports {wrong}; {package} may import only {sorted(allowed)}"


def test_the_console_sees_the_engine_only_through_the_contract() -> None:
    for module, path in _modules():
        if _package(module) == "tui" and module not in COMMANDS:
            assert "engine" not in _imported_packages(path), module


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text(
        "import rwconsole.labels\n"
        "from rwconsole import __version__, wal\n"
        "def later():\n"
        "    from rwconsole.engine import Engine\n"
    )
    assert _imported_packages(source) == {"labels", "wal", "engine"}
