"""TLS for outgoing connections: an ``ssl.SSLContext`` built from ``tls_config``.

Owns the mapping of Alloy's ``tls_config`` block (``ca_pem``/``ca_file``,
``cert_pem``/``cert_file`` + ``key_pem``/``key_file`` for mutual TLS,
``insecure_skip_verify``, ``server_name``, ``min_version``) onto the standard
library's ``ssl`` module. Verification is on by default with the system trust
store; the minimum version defaults to TLS 1.2 as in Go. PEM text for the
client certificate or key is written to a private temporary file only for the
moment ``load_cert_chain`` reads it, then removed.

Also owns picking up rotated files: ``reloading_ssl_context`` and
``reloading_server_ssl_context`` give a context that, when a connection is
opened or accepted, checks (at most every ``CHECK_INTERVAL`` seconds) whether
the ``ca_file``/``cert_file``/``key_file`` changed and then uses a context
built from the new files. Open connections keep the context they started
with. Files that do not load keep the last good context; that is logged once
per change and counted in ``rwconsole_tls_reload_failures_total``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import ssl
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from rwconsole.http.errors import ConnectivityConfigError
from rwconsole.http.options import opt, reveal
from rwconsole.metrics import Family

log = logging.getLogger(__name__)

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


# --- rotated files ----------------------------------------------------------------------

CHECK_INTERVAL = 5.0
"""Seconds between two looks at a context's files; a new connection may trigger one."""

RELOADS = Family(
    "rwconsole_tls_reloads_total",
    "Changes to a TLS CA, certificate or key file that were put to use for new "
    "connections, by the file that changed.",
    "counter",
    ("file",),
)
RELOAD_FAILURES = Family(
    "rwconsole_tls_reload_failures_total",
    "Changes to a TLS CA, certificate or key file that could not be used (half-written, "
    "unreadable, a key that does not match); the previous files stay in use. By the file "
    "that changed.",
    "counter",
    ("file",),
)
"""Process-wide (files are); every engine exposes them (``Registry.include``)."""

_Stat = tuple[int, int, int, int] | None
"""(device, inode, size, mtime_ns) of a file; None when it cannot be read."""

_live: weakref.WeakSet[TLSFiles] = weakref.WeakSet()
_live_lock = threading.Lock()


def _stat(path: str) -> _Stat:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _digest(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).digest()
    except OSError:
        return None


class TLSFiles:
    """The newest good ``SSLContext`` built from some files, rebuilt when their content changes.

    ``current()`` is called when a connection is opened: at most every
    ``CHECK_INTERVAL`` seconds it stats the files, and only when one looks
    different (inode, size, mtime) reads and hashes them; a new content builds
    a new context. A build that fails keeps the previous context, is logged
    once and counted; the next change is tried again. Thread-safe (httpx opens
    connections from worker threads).
    """

    def __init__(
        self,
        build: Callable[[], ssl.SSLContext],
        paths: Sequence[str],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._build = build
        self.paths = tuple(dict.fromkeys(p for p in paths if p))
        self._clock = clock
        self._lock = threading.Lock()
        self._alpn: list[str] | None = None
        seen = self._stats()
        digests = self._digests()
        self._context = build()  # a bad file at the start is the caller's error, as before
        self._seen = seen
        self._good = digests
        self._next_check = clock() + CHECK_INTERVAL
        self.problem = ""
        """Why the files as they are now are not used ("" when they are)."""
        with _live_lock:
            _live.add(self)

    def current(self) -> ssl.SSLContext:
        """The context for a new connection (looks at the files when it is time)."""
        if self._clock() >= self._next_check:
            self._look(when_due=True)
        return self._context

    def check(self) -> str:
        """Look at the files now; a line saying what changed ("" when nothing did)."""
        return self._look(when_due=False)

    def _look(self, *, when_due: bool) -> str:
        with self._lock:
            now = self._clock()
            if when_due and now < self._next_check:
                return ""  # another connection looked meanwhile
            self._next_check = now + CHECK_INTERVAL
            seen = self._stats()
            if seen == self._seen:
                return ""
            self._seen = seen
            digests = self._digests()
            if digests == self._good:
                self.problem = ""  # touched, or back to the content in use
                return ""
            changed = [
                p for p, new, old in zip(self.paths, digests, self._good, strict=True) if new != old
            ]
            try:
                context = self._build()
            except (ValueError, OSError) as exc:  # ConnectivityConfigError names the setting
                self.problem = f"{exc} (changed: {', '.join(changed)})"
                for path in changed:
                    RELOAD_FAILURES.labels(path).inc()  # type: ignore[union-attr]
                log.warning(
                    "TLS files changed but cannot be used; the previous ones stay in use: %s",
                    self.problem,
                )
                return f"TLS files not used (the previous ones stay in use): {self.problem}"
            if self._alpn is not None:
                context.set_alpn_protocols(self._alpn)
            self._context = context
            self._good = digests
            self.problem = ""
            for path in changed:
                RELOADS.labels(path).inc()  # type: ignore[union-attr]
            line = f"TLS files reloaded for new connections: {', '.join(changed)}"
            log.info("%s", line)
            return line

    def set_alpn(self, protocols: list[str]) -> None:
        """ALPN for this context and every one built later."""
        with self._lock:
            self._alpn = protocols
            self._context.set_alpn_protocols(protocols)

    def _stats(self) -> list[_Stat]:
        return [_stat(path) for path in self.paths]

    def _digests(self) -> list[bytes | None]:
        return [_digest(path) for path in self.paths]


class _ReloadingContext(ssl.SSLContext):
    """Hands each new connection to the newest good context of its ``TLSFiles``.

    asyncio and anyio start every TLS connection through ``wrap_bio``; an open
    connection keeps the ``SSLObject`` (and context) it started with.
    """

    files: TLSFiles

    def wrap_bio(
        self,
        incoming: Any,
        outgoing: Any,
        server_side: bool = False,
        server_hostname: Any = None,
        session: Any = None,
    ) -> ssl.SSLObject:
        return self.files.current().wrap_bio(
            incoming, outgoing, server_side, server_hostname, session
        )

    def wrap_socket(
        self,
        sock: Any,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: Any = None,
        session: Any = None,
    ) -> ssl.SSLSocket:
        return self.files.current().wrap_socket(
            sock,
            server_side,
            do_handshake_on_connect,
            suppress_ragged_eofs,
            server_hostname,
            session,
        )

    def set_alpn_protocols(self, alpn_protocols: Any) -> None:
        self.files.set_alpn(list(alpn_protocols))


def reloading_context(
    build: Callable[[], ssl.SSLContext], paths: Sequence[str], *, server_side: bool = False
) -> ssl.SSLContext:
    """``build()``, rebuilt for new connections when a file in ``paths`` changes.

    Without files (PEM text, system CAs) it is ``build()`` itself. Raises what
    ``build`` raises when the files do not load now.
    """
    if not any(paths):
        return build()
    files = TLSFiles(build, paths)
    inner = files.current()
    outer = _ReloadingContext(ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT)
    outer.files = files
    # Mirrored for code that reads them; connections use the inner context's.
    outer.minimum_version = inner.minimum_version
    if not server_side:
        outer.check_hostname = inner.check_hostname
    outer.verify_mode = inner.verify_mode
    return outer


def _files_of(tls_config: object | None) -> list[str]:
    """The files ``tls_config`` loads (a PEM text set beside its file wins)."""
    return [
        "" if opt(tls_config, "ca_pem", "") else opt(tls_config, "ca_file", ""),
        "" if opt(tls_config, "cert_pem", "") else opt(tls_config, "cert_file", ""),
        "" if opt(tls_config, "key_pem") else opt(tls_config, "key_file", ""),
    ]


def reloading_ssl_context(tls_config: object | None, *, key: str = "tls_config") -> ssl.SSLContext:
    """``build_ssl_context`` whose new connections use rotated ``*_file`` files."""
    return reloading_context(lambda: build_ssl_context(tls_config, key=key), _files_of(tls_config))


def reloading_server_ssl_context(tls_config: object, *, key: str = "tls_config") -> ssl.SSLContext:
    """``build_server_ssl_context`` whose new handshakes use rotated ``*_file`` files."""
    return reloading_context(
        lambda: build_server_ssl_context(tls_config, key=key),
        _files_of(tls_config),
        server_side=True,
    )


def release(context: ssl.SSLContext | None) -> None:
    """The owner of ``context`` is closed: its files are no longer looked at by a reload."""
    if isinstance(context, _ReloadingContext):
        with _live_lock:
            _live.discard(context.files)


def check_rotated_files() -> list[str]:
    """Look at every live context's files now (a config reload); one line per finding."""
    lines: dict[str, None] = {}
    with _live_lock:
        live = list(_live)
    for files in live:
        line = files.check()
        if line:
            lines[line] = None
        elif files.problem:
            lines[f"TLS files not used (the previous ones stay in use): {files.problem}"] = None
    return list(lines)
