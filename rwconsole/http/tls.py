"""TLS for outgoing connections: an ``ssl.SSLContext`` built from ``tls_config``.

Owns the mapping of Alloy's ``tls_config`` block (``ca_pem``/``ca_file``,
``cert_pem``/``cert_file`` + ``key_pem``/``key_file`` for mutual TLS,
``insecure_skip_verify``, ``server_name``, ``min_version``) onto the standard
library's ``ssl`` module. Verification is on by default with the system trust
store; the minimum version defaults to TLS 1.2 as in Go. PEM text for the
client certificate or key is written to a private temporary file only for the
moment ``load_cert_chain`` reads it, then removed.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
from collections.abc import Iterator
from typing import Any

from rwconsole.http.errors import ConnectivityConfigError
from rwconsole.http.options import opt, reveal

TLS_VERSIONS: dict[str, ssl.TLSVersion] = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}


class _ServerNameContext(ssl.SSLContext):
    """A context that always presents and verifies a fixed server name.

    httpx passes the URL host as ``server_hostname`` (also through CONNECT
    tunnels, where the per-request SNI override is ignored); overriding it here
    makes ``server_name`` apply on every path.
    """

    fixed_server_name: str = ""

    def wrap_bio(
        self,
        incoming: Any,
        outgoing: Any,
        server_side: bool = False,
        server_hostname: Any = None,
        session: Any = None,
    ) -> ssl.SSLObject:
        name = self.fixed_server_name or server_hostname
        return super().wrap_bio(incoming, outgoing, server_side, name, session)

    def wrap_socket(
        self,
        sock: Any,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: Any = None,
        session: Any = None,
    ) -> ssl.SSLSocket:
        name = self.fixed_server_name or server_hostname
        return super().wrap_socket(
            sock, server_side, do_handshake_on_connect, suppress_ragged_eofs, name, session
        )


def build_ssl_context(tls_config: object | None, *, key: str = "tls_config") -> ssl.SSLContext:
    """The client ``SSLContext`` for ``tls_config`` (``None`` → verified defaults).

    Raises ``ConnectivityConfigError`` naming the setting (``key`` + name) for
    an unreadable file, bad PEM text or an unknown ``min_version``.
    """
    server_name = opt(tls_config, "server_name", "")
    ctx: ssl.SSLContext
    if server_name:
        ctx = _ServerNameContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.fixed_server_name = server_name
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = _min_version(tls_config, key)

    if opt(tls_config, "insecure_skip_verify", False):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        _load_trust(ctx, tls_config, key)
    _load_client_cert(ctx, tls_config, key)
    return ctx


def _min_version(tls_config: object | None, key: str) -> ssl.TLSVersion:
    name = opt(tls_config, "min_version", "") or "TLS12"
    try:
        return TLS_VERSIONS[name]
    except KeyError:
        allowed = ", ".join(TLS_VERSIONS)
        raise ConnectivityConfigError(
            f"{key}.min_version: unknown TLS version {name!r} (use one of {allowed})"
        ) from None


def _load_trust(ctx: ssl.SSLContext, tls_config: object | None, key: str) -> None:
    ca_pem = opt(tls_config, "ca_pem", "")
    ca_file = opt(tls_config, "ca_file", "")
    if ca_pem:
        try:
            ctx.load_verify_locations(cadata=ca_pem)
        except (ssl.SSLError, ValueError) as exc:
            raise ConnectivityConfigError(f"{key}.ca_pem: not a usable PEM CA: {exc}") from None
    elif ca_file:
        try:
            ctx.load_verify_locations(cafile=ca_file)
        except FileNotFoundError:
            raise ConnectivityConfigError(f"{key}.ca_file: {ca_file!r} does not exist") from None
        except (OSError, ssl.SSLError) as exc:
            raise ConnectivityConfigError(
                f"{key}.ca_file: cannot load {ca_file!r}: {exc}"
            ) from None
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)


def _load_client_cert(ctx: ssl.SSLContext, tls_config: object | None, key: str) -> None:
    cert_pem = opt(tls_config, "cert_pem", "")
    cert_file = opt(tls_config, "cert_file", "")
    key_pem = reveal(opt(tls_config, "key_pem")) or ""
    key_file = opt(tls_config, "key_file", "")
    has_cert = bool(cert_pem or cert_file)
    has_key = bool(key_pem or key_file)
    if not has_cert and not has_key:
        return
    if has_cert != has_key:
        missing = "key_pem or key_file" if has_cert else "cert_pem or cert_file"
        raise ConnectivityConfigError(
            f"{key}: a client certificate needs both a certificate and a key ({missing} is missing)"
        )
    what = f"{key}.{'cert_pem' if cert_pem else 'cert_file'}/{'key_pem' if key_pem else 'key_file'}"
    try:
        with _pem_path(cert_pem, cert_file) as cert_path, _pem_path(key_pem, key_file) as key_path:
            ctx.load_cert_chain(certfile=cert_path, keyfile=key_path)
    except FileNotFoundError as exc:
        raise ConnectivityConfigError(f"{what}: {exc.filename!r} does not exist") from None
    except (OSError, ssl.SSLError) as exc:
        # The ssl error text never contains key material; it names the failing step.
        raise ConnectivityConfigError(
            f"{what}: cannot load the client certificate: {exc}"
        ) from None


@contextlib.contextmanager
def _pem_path(pem_text: str, path: str) -> Iterator[str]:
    """A file path holding the PEM: ``path`` itself, or a private temp file."""
    if not pem_text:
        yield path
        return
    fd, tmp = tempfile.mkstemp(prefix="rwconsole-tls-", suffix=".pem")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(pem_text)
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


_VERIFY_MODES: dict[str, ssl.VerifyMode] = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
"""By ``client_auth_type``. Python's ssl module verifies every client
certificate it asks for, so the "Any"/"Request" modes verify too (against
``ca_pem``/``ca_file``, which every mode but NoClientCert needs)."""


def build_server_ssl_context(tls_config: object, *, key: str = "tls_config") -> ssl.SSLContext:
    """The server ``SSLContext`` for a receiver's ``tls_config``.

    Needs a certificate and key; ``ca_pem``/``ca_file`` verify client
    certificates as ``client_auth_type`` asks. Raises ``ConnectivityConfigError``
    naming the setting.
    """
    if not (opt(tls_config, "cert_pem", "") or opt(tls_config, "cert_file", "")):
        raise ConnectivityConfigError(f"{key}: a server needs cert_pem or cert_file (and a key)")
    auth_type = opt(tls_config, "client_auth_type", "") or "NoClientCert"
    mode = _VERIFY_MODES.get(auth_type)
    if mode is None:
        allowed = ", ".join(_VERIFY_MODES)
        raise ConnectivityConfigError(
            f"{key}.client_auth_type: unknown value {auth_type!r} (use one of {allowed})"
        )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _min_version(tls_config, key)
    _load_client_cert(ctx, tls_config, key)
    if mode != ssl.CERT_NONE:
        if not (opt(tls_config, "ca_pem", "") or opt(tls_config, "ca_file", "")):
            raise ConnectivityConfigError(
                f"{key}: client_auth_type {auth_type} needs ca_pem or ca_file to verify "
                "client certificates with"
            )
        _load_trust(ctx, tls_config, key)
    ctx.verify_mode = mode
    return ctx
