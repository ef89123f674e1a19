"""Connections of the admin API: the client transport (Unix socket or TLS) and server TLS.

The admin client speaks HTTP/1.1 through httpx, over a Unix socket or TCP;
``admin_transport`` builds that transport with the project's TLS settings
(``reloading_ssl_context``). ``server_ssl_context`` is the server side: a
certificate and key, and a client CA when client certificates are required.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import httpx

from rwconsole.http.errors import ConnectivityConfigError
from rwconsole.http.tls import reloading_context, reloading_ssl_context


@dataclass(frozen=True, slots=True)
class ClientTLS:
    """What a client presents and trusts (all optional; the system CAs by default)."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""


def admin_transport(
    *, uds: str | None = None, tls: ClientTLS | None = None
) -> httpx.AsyncHTTPTransport:
    """httpx's transport to an admin API on the Unix socket ``uds`` or over TCP."""
    context = reloading_ssl_context(tls, key="admin") if tls is not None else None
    address = unix_socket_address(uds) if uds else None
    return httpx.AsyncHTTPTransport(uds=address, verify=context or True, retries=0)


_SUN_PATH_MAX = 107
"""Longest Unix socket path the kernel takes (``sun_path`` is 108 bytes with its NUL)."""
_held_dirs: dict[str, int] = {}


def unix_socket_address(path: str | Path) -> str:
    """``path``, or for a path too long for a socket address, the same file reached
    through ``/proc/self/fd`` and a descriptor of its directory (held while the process runs).
    """
    text = str(path)
    if len(os.fsencode(text)) <= _SUN_PATH_MAX:
        return text
    parent, name = os.path.split(os.path.abspath(text))
    fd = _held_dirs.get(parent)
    if fd is None:
        fd = _held_dirs[parent] = os.open(parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{fd}/{name}"


def server_ssl_context(cert_file: str, key_file: str, client_ca_file: str = "") -> ssl.SSLContext:
    """The server's TLS context; ``client_ca_file`` makes client certificates mandatory.

    New handshakes use the files as they are then (rotated files are picked up).
    """
    return reloading_context(
        lambda: _server_ssl_context(cert_file, key_file, client_ca_file),
        [cert_file, key_file, client_ca_file],
        server_side=True,
    )


def _server_ssl_context(cert_file: str, key_file: str, client_ca_file: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(certfile=cert_file, keyfile=key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConnectivityConfigError(
            f"admin.tls_cert_file/tls_key_file: cannot load {cert_file!r}/{key_file!r}: {exc}"
        ) from None
    if client_ca_file:
        try:
            ctx.load_verify_locations(cafile=client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConnectivityConfigError(
                f"admin.client_ca_file: cannot load {client_ca_file!r}: {exc}"
            ) from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
