"""Secret values: redacted in every textual form, revealed only on request.

A ``Secret`` comes from one of three sources written in the config file:

* a plain string (``password = "s3cr3t"``), kept in memory;
* ``{ env = "VAR" }``, read from the environment at each ``reveal()``;
* ``{ file = "path" }``, read from the file at each ``reveal()`` (surrounding
  whitespace stripped, as Prometheus does for its ``*_file`` settings).

``Secret`` subclasses ``str`` whose *string content* is the redaction marker
``"<secret>"``: ``str()``, ``repr()``, f-strings, ``%`` formatting, logging,
``json.dumps`` and ``tomli_w`` therefore all produce ``"<secret>"`` without any
cooperation from the caller. The real value lives in private slots and is
only returned by ``reveal()``. Copying returns the same object and pickling is
refused, so the value cannot leak through serialisation either.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

REDACTED = "<secret>"

SecretKind = Literal["value", "env", "file"]


_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/@:\s]*:)[^@/\s]*@")
_QUERY_PARAM = re.compile(r"(?P<head>[?&;](?P<name>[^=&#;?\s'\"]+)=)(?P<value>[^&#;\s'\"]*)")
SECRET_QUERY_PARAMS = frozenset(
    ("api_key", "apikey", "token", "access_token", "key", "password", "secret", "signature")
)
"""Query parameter names (compared case-insensitively) whose values are redacted."""


def _is_secret_param(name: str) -> bool:
    lowered = name.lower()
    # X-Amz-* covers the signature, credential and security token of presigned URLs.
    return lowered in SECRET_QUERY_PARAMS or lowered.startswith("x-amz-")


def _redact_param(match: re.Match[str]) -> str:
    if not match.group("value") or not _is_secret_param(match.group("name")):
        return match.group(0)
    return match.group("head") + REDACTED


def redact_url(text: str) -> str:
    """Hide every URL password and secret-looking query parameter value in ``text``.

    ``http://u:p@h`` → ``http://u:<secret>@h``; ``http://h/?api_key=k&x=1`` →
    ``http://h/?api_key=<secret>&x=1`` (names in ``SECRET_QUERY_PARAMS`` and
    ``X-Amz-*``, any case). Works on a bare URL and on messages that contain
    URLs (error texts).
    """
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED + "@", text)
    if "=" in text:
        text = _QUERY_PARAM.sub(_redact_param, text)
    return text


class SecretError(Exception):
    """A secret reference cannot be resolved (missing variable, unreadable file)."""


class Secret(str):
    """A secret string; see the module docstring."""

    # str subclasses cannot use __slots__; the literal value is kept in a closure
    # rather than in __dict__ so that vars()/__dict__ dumps do not show it either.
    _kind: SecretKind
    _source: Callable[[], str]
    _key_path: str
    _base_dir: Path | None

    def __new__(
        cls,
        source: str,
        kind: SecretKind = "value",
        *,
        key_path: str = "",
        base_dir: Path | None = None,
    ) -> Secret:
        self = super().__new__(cls, REDACTED)
        self._kind = kind
        self._source = lambda: source
        self._key_path = key_path
        self._base_dir = base_dir
        return self

    @classmethod
    def from_env(cls, name: str, *, key_path: str = "") -> Secret:
        return cls(name, "env", key_path=key_path)

    @classmethod
    def from_file(cls, path: str, *, key_path: str = "", base_dir: Path | None = None) -> Secret:
        return cls(path, "file", key_path=key_path, base_dir=base_dir)

    @property
    def kind(self) -> SecretKind:
        """``"value"`` (written literally), ``"env"`` or ``"file"``."""
        return self._kind

    @property
    def key_path(self) -> str:
        """Where the secret was written (e.g. ``endpoint[0].basic_auth.password``)."""
        return self._key_path

    @property
    def reference(self) -> dict[str, str] | None:
        """``{"env": NAME}`` / ``{"file": PATH}`` for references; ``None`` for literal values."""
        if self._kind == "value":
            return None
        return {self._kind: self._source()}

    def file_path(self) -> Path:
        """The file a ``file`` reference reads (relative paths resolve against the config's dir)."""
        path = Path(self._source()).expanduser()
        if not path.is_absolute() and self._base_dir is not None:
            path = self._base_dir / path
        return path

    def reveal(self) -> str:
        """Return the secret value, reading the environment or file now."""
        where = f"{self._key_path}: " if self._key_path else ""
        if self._kind == "value":
            return self._source()
        if self._kind == "env":
            value = os.environ.get(self._source())
            if value is None:
                raise SecretError(f"{where}environment variable {self._source()} is not set")
            return value
        path = self.file_path()
        try:
            return path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise SecretError(f"{where}cannot read secret file {str(path)!r}: {reason}") from None

    def __repr__(self) -> str:
        return REDACTED

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, spec: str) -> str:
        return format(REDACTED, spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return False
        return (self._kind, self._source()) == (other._kind, other._source())

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash((Secret, self._kind, self._source()))

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self

    def __reduce__(self) -> Any:
        raise TypeError("Secret objects cannot be pickled")

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError("Secret objects cannot be pickled")
