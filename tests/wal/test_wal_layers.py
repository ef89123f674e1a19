"""The WAL package's layers: what each module may import."""

from __future__ import annotations

import ast
from pathlib import Path

import rwconsole.wal

WAL_DIR = Path(rwconsole.wal.__file__).parent
OUTSIDE = ("rwconsole.remote", "rwconsole.sources", "rwconsole.tui", "rwconsole.engine")


def _imports(module: str) -> set[str]:
    tree = ast.parse((WAL_DIR / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_nothing_in_wal_imports_the_layers_above_it() -> None:
    modules = sorted(p.stem for p in WAL_DIR.glob("*.py"))
    assert {"segment", "records", "checkpoint", "repair", "families", "storage"} <= set(modules)
    for module in modules:
        above = sorted(name for name in _imports(module) if name.startswith(OUTSIDE))
        assert above == [], f"rwconsole.wal.{module} imports {above}"


def test_segments_know_no_records_and_records_know_no_files() -> None:
    assert not any("records" in name for name in _imports("segment"))
    records_imports = _imports("records")
    assert not any(name.startswith(("rwconsole.wal.", "os", "pathlib")) for name in records_imports)
