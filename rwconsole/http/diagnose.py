"""Why an exchange failed, in words that name the setting to check.

Owns the text shown for a failed connection: TLS verification, version and
client-certificate failures with the ``tls_config`` key that fixes them,
proxy refusals, and servers that drop the connection after the handshake.
"""

from __future__ import annotations

import ssl

import httpx

from rwconsole.http.errors import describe_exc
from rwconsole.http.options import opt


def describe_network_error(exc: BaseException, endpoint: object) -> str:
    """Explain a failed connection; TLS problems get a hint naming the setting."""
    base = describe_exc(exc)
    cause = _find_ssl_error(exc)
    tls = opt(endpoint, "tls_config")
    if cause is None:
        if isinstance(exc, httpx.ProxyError):
            return f"proxy refused the connection: {base}"
        https = str(opt(endpoint, "url", "")).lower().startswith("https:")
        has_cert = opt(tls, "cert_file", "") or opt(tls, "cert_pem", "")
        if https and not has_cert and isinstance(exc, httpx.ReadError | httpx.WriteError):
            # A server that wants a client certificate drops the connection
            # after the handshake; the alert saying so is often lost.
            return (
                f"{base}: the server closed the TLS connection; if it requires a client "
                "certificate, set tls_config.cert_* and key_*"
            )
        return base
    text = str(cause)
    upper = text.upper()
    if isinstance(cause, ssl.SSLCertVerificationError):
        hint = cause.verify_message or text
        return f"TLS certificate verification failed: {hint} (check tls_config.ca_* / server_name)"
    if any(k in upper for k in ("PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL", "NO_PROTOCOLS")):
        minimum = opt(tls, "min_version", "") or "TLS12"
        return (
            f"TLS version negotiation failed: the server does not accept TLS {minimum[3]}."
            f"{minimum[4]} or newer (tls_config.min_version = {minimum}): {text}"
        )
    if "CERTIFICATE_REQUIRED" in upper or (
        "HANDSHAKE_FAILURE" in upper and not (opt(tls, "cert_file") or opt(tls, "cert_pem"))
    ):
        return (
            "TLS handshake failed: the server requires a client certificate "
            f"(set tls_config.cert_* and key_*): {text}"
        )
    if "UNKNOWN_CA" in upper or "BAD_CERTIFICATE" in upper:
        return f"TLS handshake failed: the server rejected our client certificate: {text}"
    return f"TLS error: {text}"


def _find_ssl_error(exc: BaseException) -> ssl.SSLError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError):
            return current
        for arg in getattr(current, "args", ()):
            if isinstance(arg, ssl.SSLError):
                return arg
        current = current.__cause__ or current.__context__
    return None
