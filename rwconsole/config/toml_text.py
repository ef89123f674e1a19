"""TOML text for generated config files, with secret references written inline.

tomli-w writes every mapping as a ``[table]``; a secret reference
(``{ env = "X" }``/``{ file = "p" }``) reads better inline, next to its key, so
this writer lays the tables out itself and leaves scalars and arrays to tomli-w.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tomli_w


def dump_toml(document: Mapping[str, Any]) -> str:
    """TOML text of ``document`` with secret references written inline (``{ env = "X" }``)."""
    return "".join(_table_lines(document, "", aot=False)).lstrip("\n")


def _is_reference(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("env", "file")


def _is_table(value: Any) -> bool:
    return isinstance(value, dict) and not _is_reference(value)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_table(v) for v in value)


def _table_lines(table: Mapping[str, Any], name: str, *, aot: bool) -> list[str]:
    literals = [(k, v) for k, v in table.items() if not _is_table(v) and not _is_table_array(v)]
    nested = [(k, v) for k, v in table.items() if _is_table(v) or _is_table_array(v)]
    lines: list[str] = []
    if name and (aot or literals or not nested):
        lines.append(f"\n[[{name}]]\n" if aot else f"\n[{name}]\n")
    lines += [f"{_key(k)} = {_literal(v)}\n" for k, v in literals]
    for key, value in nested:
        full = f"{name}.{_key(key)}" if name else _key(key)
        if _is_table(value):
            lines += _table_lines(value, full, aot=False)
        else:
            for item in value:
                lines += _table_lines(item, full, aot=True)
    return lines


def _key(key: str) -> str:
    return tomli_w.dumps({key: 0}).rsplit(" = ", 1)[0]


def _literal(value: Any) -> str:
    if _is_reference(value):
        ((kind, text),) = value.items()
        return f"{{ {kind} = {_literal(text)} }}"
    if isinstance(value, list) and any(_is_reference(v) for v in value):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_literal(v)}" for k, v in value.items()) + " }"
    return tomli_w.dumps({"v": value}).removeprefix("v = ").removesuffix("\n")
