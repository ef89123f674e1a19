"""The errors of the HTTP stack and their readable text.

Owns ``ConnectivityConfigError`` (a setting that cannot work, found when a
client is built), ``AuthError`` (credentials that could not be obtained for
one request) and the readable text of a network exception (URL passwords
redacted).
"""

from __future__ import annotations

import httpx

from rwconsole.config.secrets import redact_url


class ConnectivityConfigError(ValueError):
    """A setting of an endpoint cannot be used (bad file, unsupported option).

    The message names the setting by its key path, e.g. ``tls_config.ca_file``.
    """


class AuthError(Exception):
    """Credentials for one request could not be obtained.

    The message is safe to show: it never contains a secret value.
    """


def describe_exc(exc: BaseException) -> str:
    """Readable text for a network exception (some httpx errors have empty text)."""
    text = str(exc).strip()
    name = type(exc).__name__
    return redact_url(f"{name}: {text}" if text else name)


def url_problem(url: str) -> str:
    """Why ``url`` cannot be requested (host or port malformed), or ``""`` when it can."""
    try:
        port = httpx.URL(url).port
    except httpx.InvalidURL as exc:
        return f"{redact_url(url)}: not a valid URL ({exc})"
    if port is not None and port > 65535:
        return f"{redact_url(url)}: not a valid URL (port {port} > 65535)"
    return ""
