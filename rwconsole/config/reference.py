"""Generate the Markdown configuration reference from the schema.

``python -m rwconsole.config.reference`` prints it; ``--write`` replaces the
text between ``<!-- config-reference:start -->`` and
``<!-- config-reference:end -->`` in README.md; ``--check`` exits 1 when the
README is out of date. Every table and key comes from ``rwconsole.config.schema``
(types from the type hints, defaults and descriptions from the field metadata),
so the reference cannot drift from what the loader accepts.
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from dataclasses import Field, is_dataclass
from pathlib import Path
from typing import Any

from rwconsole.config import schema
from rwconsole.config.secrets import Secret

START = "<!-- config-reference:start -->"
END = "<!-- config-reference:end -->"
README = Path(__file__).resolve().parents[2] / "README.md"

_INTRO = """\
The config file is TOML. Its tables and keys mirror Grafana Alloy's
`prometheus.remote_write` component (same names, same defaults); `[storage]`,
`[http]`, `[[scrape]]`, `[receiver]`, `[synthetic]`, `[demo]` and the WAL keys
`compression` and `segment_size` are rwconsole's own. Check a file with
`rwconsole check-config FILE` (add `--json` for machine-readable output): it
lists every problem with its key path, or prints the effective configuration
with defaults filled in and secrets redacted.

- **duration**: a Go-style string such as `"30s"`, `"5m"`, `"1h30m"`, `"250ms"`
  (units `h`, `m`, `s`, `ms`, `us`, `ns`).
- **secret**: a string (`password = "…"`), an environment variable
  (`password = { env = "RW_PASSWORD" }`) or a file
  (`password = { file = "/run/secrets/rw" }`, relative to the config file's
  directory). References are read when used, so a rotated secret is picked up
  without a restart. Secrets are shown as `<secret>` everywhere (console, logs,
  `check-config`); references are shown as the reference, never resolved.
- At most one authentication method per endpoint or scrape job (`basic_auth`,
  `authorization`, `bearer_token`, `bearer_token_file`, `oauth2`, and for
  endpoints `sigv4`, `azuread`).
- Saving a change from the console (e.g. a new `max_shards`) rewrites the file
  atomically with only that key changed, keeping secrets exactly as written;
  the file is re-formatted by tomli-w, so **comments and layout are not kept**.
- A config without endpoints, or without a source, is valid; `check-config`
  warns about it.

Regenerate this section with `python -m rwconsole.config.reference --write`.
"""


def render_reference() -> str:
    """The full Markdown reference (without the README markers)."""
    sections: list[str] = [_INTRO]
    seen: dict[type, str] = {}
    _render_table(schema.Config, "Top level", (), sections, seen)
    return "\n".join(sections).rstrip() + "\n"


def update_readme(path: Path = README) -> bool:
    """Rewrite the reference section of ``path``; return whether it changed."""
    text = path.read_text(encoding="utf-8")
    new = replace_section(text, render_reference())
    if new == text:
        return False
    path.write_text(new, encoding="utf-8")
    return True


def replace_section(text: str, body: str) -> str:
    """``text`` with the content between the markers replaced by ``body``."""
    start = text.find(START)
    end = text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README markers {START} / {END} not found")
    return text[: start + len(START)] + "\n" + body + text[end:]


def current_section(text: str) -> str:
    """The content between the markers of ``text``."""
    start = text.find(START)
    end = text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README markers {START} / {END} not found")
    return text[start + len(START) : end].removeprefix("\n")


# --- rendering --------------------------------------------------------------------------


def _render_table(
    cls: type, title: str, prefix: tuple[str, ...], out: list[str], seen: dict[type, str]
) -> None:
    seen.setdefault(cls, title)
    doc = (cls.__doc__ or "").strip().splitlines()[0]
    out.append(f"### {title}\n\n{doc}\n")
    out.append("| key | type | default | description |\n|---|---|---|---|")
    hints = typing.get_type_hints(cls)
    children: list[tuple[type, str, tuple[str, ...]]] = []
    for f in schema.ordered_fields(cls):
        hint = hints[f.name]
        kind = _type_name(hint, f)
        default = "required" if f.metadata.get("required") else _default(cls, f)
        out.append(f"| `{f.name}` | {kind} | {default} | {_cell(f.metadata.get('doc', ''))} |")
        block = _block_type(hint)
        if block is not None:
            is_array = typing.get_origin(_unwrap(hint)) is list
            path = (*prefix, f.name)
            name = ".".join(path)
            children.append((block, f"`[[{name}]]`" if is_array else f"`[{name}]`", path))
    out.append("")
    # Claim every child block first, so a shared block (tls_config) is described
    # at its shallowest place and nested repeats refer to it.
    for block, child_title, _ in children:
        seen.setdefault(block, child_title)
    for block, child_title, path in children:
        if seen[block] != child_title:
            out.append(f"### {child_title}\n\nSame keys as {seen[block]}.\n")
            continue
        _render_table(block, child_title, path, out, seen)


def _default(cls: type, f: Field[Any]) -> str:
    text = schema.describe_default(cls, f.name)
    return f"`{text}`" if text else ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _unwrap(hint: Any) -> Any:
    if isinstance(hint, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else hint
    return hint


def _block_type(hint: Any) -> type | None:
    inner = _unwrap(hint)
    if typing.get_origin(inner) is list:
        inner = typing.get_args(inner)[0]
    if isinstance(inner, type) and is_dataclass(inner):
        return inner
    return None


def _type_name(hint: Any, f: Field[Any] | None = None) -> str:
    if f is not None and f.metadata.get("kind") == "duration":
        return "duration"
    inner = _unwrap(hint)
    origin = typing.get_origin(inner)
    if origin is list:
        item = typing.get_args(inner)[0]
        if isinstance(item, type) and is_dataclass(item):
            return "array of tables"
        return f"list({_type_name(item)})"
    if origin is dict:
        return f"map({_type_name(typing.get_args(inner)[1])})"
    if isinstance(inner, type) and is_dataclass(inner):
        return "table"
    names = {str: "string", bool: "bool", int: "integer", float: "number", Secret: "secret"}
    return names.get(inner, str(inner))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="print or update the config reference")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="update README.md in place")
    group.add_argument("--check", action="store_true", help="exit 1 if README.md is stale")
    args = parser.parse_args(argv)
    if args.write:
        changed = update_readme()
        print(f"{README.name}: {'updated' if changed else 'already up to date'}")
        return 0
    if args.check:
        stale = current_section(README.read_text(encoding="utf-8")) != render_reference()
        if stale:
            print(
                "README.md configuration reference is out of date; run "
                "python -m rwconsole.config.reference --write",
                file=sys.stderr,
            )
        return 1 if stale else 0
    sys.stdout.write(render_reference())
    return 0


if __name__ == "__main__":
    sys.exit(main())
