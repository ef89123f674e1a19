"""The README configuration reference is generated from the schema and kept current."""

from __future__ import annotations

import typing
from dataclasses import fields, is_dataclass

from rwconsole.config import reference, schema


def _all_dataclasses() -> set[type]:
    found: set[type] = set()
    pending: list[type] = [schema.Config]
    while pending:
        cls = pending.pop()
        if cls in found:
            continue
        found.add(cls)
        for hint in typing.get_type_hints(cls).values():
            for arg in (hint, *typing.get_args(hint)):
                inner = typing.get_args(arg)[0] if typing.get_origin(arg) is list else arg
                if isinstance(inner, type) and is_dataclass(inner):
                    pending.append(inner)
    return found


def test_readme_reference_is_up_to_date() -> None:
    text = reference.README.read_text(encoding="utf-8")
    current = reference.current_section(text)
    assert current == reference.render_reference(), (
        "README.md configuration reference is out of date; regenerate it with "
        "`python -m rwconsole.config.reference --write`"
    )


def test_every_key_is_documented() -> None:
    rendered = reference.render_reference()
    classes = _all_dataclasses()
    assert schema.QueueConfig in classes and schema.ManagedIdentityConfig in classes
    for cls in classes:
        assert cls.__doc__, cls
        for f in fields(cls):
            assert f.metadata.get("doc"), f"{cls.__name__}.{f.name} has no description"
            assert f"| `{f.name}` |" in rendered


def test_reference_shows_defaults_and_tables() -> None:
    rendered = reference.render_reference()
    assert "| `max_shards` | integer | `50` |" in rendered
    assert '| `min_backoff` | duration | `"30ms"` |' in rendered
    assert "| `url` | string | required |" in rendered
    assert "### `[[endpoint.write_relabel_config]]`" in rendered
    assert "### `[endpoint.azuread.managed_identity]`" in rendered
    assert "### `[[scrape]]`" in rendered
    assert "comments and layout are not kept" in rendered


def test_replace_section_round_trip() -> None:
    text = f"intro\n{reference.START}\nold\n{reference.END}\noutro\n"
    new = reference.replace_section(text, "body\n")
    assert new == f"intro\n{reference.START}\nbody\n{reference.END}\noutro\n"
    assert reference.current_section(new) == "body\n"
