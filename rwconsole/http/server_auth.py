"""Who may use a server: HTTP basic auth users and bearer tokens, checked in constant time.

Passwords and tokens are config secrets (a string, ``{ env = ... }`` or
``{ file = ... }``), plain values rather than Prometheus' bcrypt hashes. They
are read again at most every ``REFRESH_SECONDS`` so a rotated file or
variable takes effect without a restart, and never per request.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Mapping, Sequence

from rwconsole.http.options import SecretLike, reveal

REFRESH_SECONDS = 10.0


class ServerAuth:
    """Checks a request's ``Authorization`` header against the allowed users and tokens."""

    def __init__(
        self, users: Mapping[str, SecretLike | str], tokens: Sequence[SecretLike | str]
    ) -> None:
        self._users = dict(users)
        self._tokens = list(tokens)
        self._loaded_at = -REFRESH_SECONDS
        self._passwords: dict[bytes, bytes] = {}
        self._token_values: list[bytes] = []
        self.load()  # a missing variable or unreadable file fails at start, with its key

    @property
    def enabled(self) -> bool:
        return bool(self._users or self._tokens)

    def load(self) -> None:
        """Read the secrets now (raises ``AuthError`` naming the unreadable one)."""
        self._passwords = {
            name.encode(): (reveal(secret) or "").encode() for name, secret in self._users.items()
        }
        self._token_values = [(reveal(token) or "").encode() for token in self._tokens]
        self._loaded_at = time.monotonic()

    def check(self, authorization: str) -> str | None:
        """None when ``authorization`` is allowed in, else why not (no secret in it)."""
        if not self.enabled:
            return None
        if time.monotonic() - self._loaded_at >= REFRESH_SECONDS:
            try:
                self.load()
            except Exception:  # keep the last good values; the file may be mid-rotation
                self._loaded_at = time.monotonic()
        scheme, _, credentials = authorization.strip().partition(" ")
        scheme = scheme.lower()
        credentials = credentials.strip()
        if scheme == "bearer" and self._token_values:
            given = credentials.encode()
            # Compare with every token, so the time taken does not tell which matched.
            matched = False
            for token in self._token_values:
                matched |= hmac.compare_digest(given, token) and bool(token)
            return None if matched else "bearer token not accepted"
        if scheme == "basic" and self._passwords:
            try:
                decoded = base64.b64decode(credentials, validate=True)
            except (binascii.Error, ValueError):
                return "malformed basic auth credentials"
            user, sep, password = decoded.partition(b":")
            expected = self._passwords.get(user)
            if not sep or expected is None:
                hmac.compare_digest(password, password)  # same work for an unknown user
                return "unknown user or wrong password"
            if hmac.compare_digest(password, expected) and expected:
                return None
            return "unknown user or wrong password"
        if not authorization:
            return "authentication required"
        return f"authorization scheme {scheme or '?'!r} not accepted"
