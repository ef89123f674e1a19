"""Reading an endpoint's settings and secrets without depending on the config classes.

Owns attribute access by Alloy name on any settings block (duck typing, so
remote write, scraping and tests can pass their own objects), revealing
secrets, and ``*_file`` secrets re-read on every use so rotation works.
"""

from __future__ import annotations

from typing import Any, Protocol

from rwconsole.http.errors import AuthError


class SecretLike(Protocol):
    """What a ``Secret`` offers: its value on demand, never in ``str()``."""

    def reveal(self) -> str: ...


def opt(obj: object, name: str, default: Any = None) -> Any:
    """``obj.name`` if the block is set and has the attribute, else ``default``."""
    if obj is None:
        return default
    value = getattr(obj, name, default)
    return default if value is None else value


def reveal(value: SecretLike | str | None) -> str | None:
    """The plain value of a secret (a ``Secret`` or a plain string).

    Raises ``AuthError`` when the secret refers to something unreadable now.
    """
    if value is None:
        return None
    # Checked before ``str``: a config ``Secret`` is a ``str`` whose text is redacted.
    if hasattr(value, "reveal"):
        try:
            return value.reveal()
        except Exception as exc:  # a missing variable or unreadable file behind the secret
            raise AuthError(str(exc)) from None
    return str(value)


def unchanging(value: object) -> bool:
    """Whether a setting reads the same on every use: anything but a secret kept in a
    file (re-read on every use, so a rotated file takes effect)."""
    return getattr(value, "kind", "value") != "file"


def read_secret_file(path: str, key: str) -> str:
    """Read a secret file now (files are re-read per request, so rotation works).

    Surrounding whitespace is trimmed, as Prometheus does. ``key`` names the
    setting for the error message.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise AuthError(f"cannot read {key} {path!r}: {reason}") from None


def secret_or_file(
    secret: SecretLike | str | None, path: str | None, key: str, file_key: str
) -> str | None:
    """The value of ``key`` or, when only ``file_key`` is set, of that file."""
    value = reveal(secret)
    if value:
        return value
    if path:
        return read_secret_file(path, file_key)
    return None


def custom_headers(block: object) -> dict[str, str]:
    """The ``http_headers`` of a settings block, revealed, several values joined by commas."""
    headers: dict[str, str] = {}
    for name, values in (opt(block, "http_headers", None) or {}).items():
        revealed = [reveal(value) or "" for value in values]
        if revealed:
            headers[name] = ", ".join(revealed)
    return headers
