"""The remote-write client: one attempt of one request, classified.

Owns building a remote-write request for one endpoint (the protocol headers
of remote-write 1.0 and 2.0, the user's ``headers``/``http_headers``,
``Retry-Attempt``), sending it through ``rwconsole.http`` (its transport,
TLS, proxy, authentication and redirect policy) within the per-attempt
``remote_timeout`` (a first attempt over a lean HTTP/1.1 connection, with
headers that never change, goes out with the head prepared once), and
turning whatever comes back — a response, a network error, a timeout, a
credentials failure — into a ``SendResult`` the queue manager acts on.
``send`` never raises for anything the server or the network does. ``state``
is the connection summary for the console; it never contains a secret (URL
passwords are shown as ``<secret>``, header values are never included).

Retrying, backoff and accounting belong to the queue manager.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

import httpx

from rwconsole.config.schema import EndpointConfig
from rwconsole.config.secrets import redact_url
from rwconsole.http.auth import Authenticator, build_authenticator
from rwconsole.http.credential_cache import CredentialStatus
from rwconsole.http.deadlines import Deadlines
from rwconsole.http.diagnose import describe_network_error
from rwconsole.http.errors import AuthError, ConnectivityConfigError
from rwconsole.http.http1 import HTTP2Negotiated, PreparedHead, prepare_head
from rwconsole.http.interface import Reply
from rwconsole.http.options import reveal, unchanging
from rwconsole.http.redirect import location
from rwconsole.http.transport import build_transport, send
from rwconsole.protocol.encode import (
    CONTENT_ENCODING,
    CONTENT_TYPE_V1,
    CONTENT_TYPE_V2,
    EXEMPLARS_WRITTEN_HEADER,
    HISTOGRAMS_WRITTEN_HEADER,
    SAMPLES_WRITTEN_HEADER,
    VERSION_HEADER,
    VERSION_V1,
    VERSION_V2,
)

Outcome = Literal["ok", "recoverable", "fatal"]

MAX_REASON_BYTES = 1024
_MAX_DRAIN_BYTES = 64 * 1024  # a longer answer is cut and its connection closed

WRITTEN_HEADERS = (SAMPLES_WRITTEN_HEADER, HISTOGRAMS_WRITTEN_HEADER, EXEMPLARS_WRITTEN_HEADER)
_WRITTEN_KEYS = tuple(name.lower().encode() for name in WRITTEN_HEADERS)
_CLASSIFY_HEADERS = frozenset((*_WRITTEN_KEYS, b"retry-after", b"location"))


@dataclass(frozen=True, slots=True)
class SendResult:
    """The classified outcome of one attempt.

    ``outcome``: ``ok`` (2xx), ``recoverable`` (5xx, 429 when retrying it,
    network errors, timeouts, credentials that could not be obtained) or
    ``fatal`` (other 4xx, 3xx not followed, 429 when not retrying it, and a
    2.0 request answered 2xx without any Written header). ``retry_after`` is in
    seconds (None when absent, unparsable, zero or in the past). ``reason`` is
    the receiver's body (at most 1024 bytes) or the error text. ``written``
    holds the samples/histograms/exemplars counts from the Written headers
    (missing ones count 0), or None when the response had none.
    """

    outcome: Outcome
    status: int | None
    retry_after: float | None
    reason: str
    duration: float
    written: tuple[int, int, int] | None = None


@dataclass(frozen=True, slots=True)
class EndpointConnection:
    """What the console shows about an endpoint's connection (no secrets)."""

    url: str
    connected: bool = False
    last_status: int | None = None
    last_error: str = ""
    last_error_time: float | None = None
    last_success_time: float | None = None
    protocol: str = ""
    auth: str = "none"
    proxied: bool = False


class RemoteWriteClient:
    """Sends remote-write requests to one endpoint, one attempt at a time.

    ``endpoint`` is the endpoint block (Alloy's attribute names). Raises
    ``ConnectivityConfigError`` for settings that cannot work (unreadable CA,
    unknown TLS version, unsupported proxy scheme, …).

    With ``lean_http1=False`` direct origins go through httpx's pools as
    well (``rwconsole.http.transport.build_transport``); the request, the
    redirect policy and the classification are the same either way.
    """

    def __init__(
        self, endpoint: EndpointConfig, *, user_agent: str, lean_http1: bool = True
    ) -> None:
        self._endpoint = endpoint
        self._lean = lean_http1
        url = endpoint.url
        if not url:
            raise ConnectivityConfigError("url is not set")
        try:
            self._url = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise ConnectivityConfigError(f"url: {redact_url(url)!r} is not a URL: {exc}") from None
        if self._url.scheme not in ("http", "https"):
            raise ConnectivityConfigError(
                f"url: {redact_url(url)!r} must start with http:// or https://"
            )
        self._user_agent = user_agent
        try:
            self._setup(endpoint, url)
        except AuthError as exc:
            raise ConnectivityConfigError(str(exc)) from None

    def _setup(self, endpoint: EndpointConfig, url: str) -> None:
        self._timeout = float(endpoint.remote_timeout)
        self._deadlines = Deadlines(self._timeout)
        self._follow_redirects = endpoint.follow_redirects
        transport = build_transport(endpoint, http2=endpoint.enable_http2, lean_http1=self._lean)
        self._auth: Authenticator = build_authenticator(endpoint, timeout=self._timeout)
        self._transport = transport
        self._extensions = {"timeout": httpx.Timeout(self._timeout).as_dict()}
        self._base_headers = {
            protocol: _protocol_headers(self._url, protocol, self._user_agent)
            for protocol in (1, 2)
        }
        self._ok: tuple[int, float, str] | None = None
        self._state = EndpointConnection(
            url=redact_url(url), auth=self._auth.kind, proxied=transport.proxied(self._url)
        )
        user_values = [
            *endpoint.headers.values(),
            *(value for values in endpoint.http_headers.values() for value in values),
        ]
        self._fixed_headers = self._auth.fixed() and all(map(unchanging, user_values))
        self._prepared: dict[int, PreparedHead] = {}

    @property
    def state(self) -> EndpointConnection:
        """The connection summary; read it on the loop's thread, as ``send`` runs."""
        if self._ok is not None:
            status, when, protocol = self._ok
            self._ok = None
            self._state = replace(
                self._state,
                connected=True,
                last_status=status,
                last_success_time=when,
                protocol=protocol,
            )
        return self._state

    def credential_status(self) -> CredentialStatus | None:
        """The cloud credential source in use and its expiry (sigv4, azuread)."""
        return self._auth.credential_status()

    async def send(
        self,
        body: bytes,
        *,
        protocol: int,
        attempt: int,
        items: int = 0,
        retry_on_http_429: bool | None = None,
    ) -> SendResult:
        """POST one snappy-compressed ``body`` once and classify the outcome.

        ``protocol`` is 1 or 2; ``attempt`` is 0 for the first try and n for
        the n-th retry (sent as ``Retry-Attempt``); ``items`` is the number of
        samples + histograms + exemplars in the body (for the 2.0 Written
        check); ``retry_on_http_429`` defaults to the endpoint's
        ``queue_config.retry_on_http_429``.
        """
        if protocol not in (1, 2):
            raise ValueError(f"protocol must be 1 or 2, not {protocol!r}")
        if retry_on_http_429 is None:
            retry_on_http_429 = self._endpoint.queue_config.retry_on_http_429
        start = time.perf_counter()
        try:
            async with self._deadlines.timeout():
                reply = await self._exchange(body, protocol, attempt)
        except AuthError as exc:
            return self._failed(str(exc), start, network=False)
        except TimeoutError:
            return self._failed(
                f"no complete response within remote_timeout ({self._timeout:g}s)", start
            )
        except httpx.TimeoutException as exc:
            return self._failed(
                f"timed out ({type(exc).__name__}) within remote_timeout ({self._timeout:g}s)",
                start,
            )
        except (httpx.HTTPError, OSError, ValueError, RuntimeError) as exc:
            return self._failed(describe_network_error(exc, self._endpoint), start)
        return self._classify(reply, protocol, items, retry_on_http_429, start)

    async def aclose(self) -> None:
        await self._transport.aclose()
        await self._auth.aclose()

    async def _exchange(self, body: bytes, protocol: int, attempt: int) -> Reply:
        """The reply to one attempt. A first attempt that goes over a lean HTTP/1.1
        connection, with headers that are the same on every request, is sent with the
        head prepared once for its protocol (the same headers ``_request`` builds);
        anything else is built whole."""
        lean = None
        if attempt == 0 and self._fixed_headers:
            lean = self._transport.lean_transport(self._url)
        if lean is not None:
            prepared = self._prepared.get(protocol) or await self._prepare(protocol)
            try:
                reply = await lean.exchange_prepared(
                    prepared, body, max_body=_MAX_DRAIN_BYTES, connect_timeout=self._timeout
                )
            except HTTP2Negotiated:
                self._transport.chose_http2(self._url)  # nothing went out: httpx sends it
            else:
                if not self._follow_redirects or location(reply.status, reply.headers) is None:
                    return reply
                return await send(
                    self._transport,
                    await self._request(body, protocol, attempt),
                    follow_redirects=True,
                    max_body=_MAX_DRAIN_BYTES,
                    answered=reply,
                )
        return await send(
            self._transport,
            await self._request(body, protocol, attempt),
            follow_redirects=self._follow_redirects,
            max_body=_MAX_DRAIN_BYTES,
        )

    async def _prepare(self, protocol: int) -> PreparedHead:
        prepared = self._prepared[protocol] = prepare_head(await self._request(b"", protocol, 0))
        return prepared

    async def _request(self, body: bytes, protocol: int, attempt: int) -> httpx.Request:
        request = self._build_request(body, protocol, attempt)
        await self._auth.apply(request)
        return request

    def _build_request(self, body: bytes, protocol: int, attempt: int) -> httpx.Request:
        headers = self._base_headers[protocol] + [(b"Content-Length", b"%d" % len(body))]
        if attempt >= 1:
            headers.append((b"Retry-Attempt", b"%d" % attempt))
        # ``stream=`` rather than ``content=``: the headers are complete already,
        # which spares httpx's header defaulting (a good part of a send's CPU).
        request = httpx.Request(
            "POST",
            self._url,
            headers=headers,
            stream=httpx.ByteStream(body),
            extensions=dict(self._extensions),
        )
        request.read()
        _apply_user_headers(request, self._endpoint.headers)
        _apply_user_headers(request, self._endpoint.http_headers)
        return request

    def _classify(
        self,
        reply: Reply,
        protocol: int,
        items: int,
        retry_on_http_429: bool,
        start: float,
    ) -> SendResult:
        duration = time.perf_counter() - start
        status = reply.status
        fields = _response_fields(reply.headers)
        written = _written(fields)
        retry_after = parse_retry_after(fields.get(b"retry-after"))
        reason = f"HTTP {status} {reply.reason}".rstrip()
        if not 200 <= status < 300 and reply.body:
            text = reply.body[:MAX_REASON_BYTES].decode("utf-8", "replace").strip()
            reason = text or reason
        outcome: Outcome
        if 200 <= status < 300:
            outcome, reason = "ok", ""
            if written is not None and sum(written) < items and reply.body:
                # A partial write: the receiver's body says why some items were not written.
                reason = reply.body[:MAX_REASON_BYTES].decode("utf-8", "replace").strip()
            if protocol == 2 and items > 0 and written is None:
                outcome = "fatal"
                reason = (
                    f"receiver did not confirm the write: HTTP {status} to a remote-write 2.0 "
                    "request without any X-Prometheus-Remote-Write-*-Written header (it "
                    "probably ignored the 2.0 content type; treated like 415: the queue "
                    "sends 1.0 instead)"
                )
        elif status >= 500:
            outcome = "recoverable"
        elif status == 429:
            outcome = "recoverable" if retry_on_http_429 else "fatal"
        else:
            outcome = "fatal"
            if 300 <= status < 400:
                location = redact_url(fields.get(b"location", ""))
                reason = f"HTTP {status} redirect to {location or '?'} not followed" + (
                    " (follow_redirects is false)" if not self._follow_redirects else ""
                )
        if status == 401:
            self._auth.on_unauthorized()
        now = time.time()
        protocol_name = reply.http_version
        if outcome == "ok":
            # Kept as it comes and made into the summary when ``state`` is read: a
            # summary built for every send costs several µs of it.
            self._ok = (status, now, protocol_name)
        else:
            self._state = replace(
                self.state,
                connected=True,
                last_status=status,
                protocol=protocol_name,
                last_error=f"HTTP {status}: {_one_line(reason)}",
                last_error_time=now,
            )
        return SendResult(outcome, status, retry_after, reason, duration, written)

    def _failed(self, reason: str, start: float, *, network: bool = True) -> SendResult:
        reason = redact_url(reason)
        state = self.state
        connected = False if network else state.connected
        self._state = replace(
            state,
            connected=connected,
            last_error=_one_line(reason),
            last_error_time=time.time(),
        )
        return SendResult("recoverable", None, None, reason, time.perf_counter() - start, None)


def _protocol_headers(url: httpx.URL, protocol: int, user_agent: str) -> list[tuple[bytes, bytes]]:
    """The headers every request of ``protocol`` carries (without its Content-Length)."""
    v2 = protocol == 2
    return [
        (b"Host", url.netloc),
        (b"Content-Encoding", CONTENT_ENCODING.encode()),
        (b"Content-Type", (CONTENT_TYPE_V2 if v2 else CONTENT_TYPE_V1).encode()),
        (VERSION_HEADER.encode(), (VERSION_V2 if v2 else VERSION_V1).encode()),
        (b"User-Agent", user_agent.encode()),
    ]


def _apply_user_headers(request: httpx.Request, headers: Mapping[str, object]) -> None:
    """Set user headers last: each name replaces what was there; lists give several values."""
    if not headers:
        return
    names = {name.lower() for name in headers}
    raw = [(k, v) for k, v in request.headers.raw if k.decode("latin-1").lower() not in names]
    for name, values in headers.items():
        items = values if isinstance(values, list | tuple) else [values]
        for value in items:
            text = reveal(value)  # type: ignore[arg-type]
            if text is not None:
                raw.append((name.encode("latin-1"), text.encode("utf-8")))
    request.headers = httpx.Headers(raw)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (integer seconds or HTTP-date).

    None when absent, unparsable, zero or in the past (the caller then uses its
    own backoff). A date gives the whole seconds until then, as Prometheus does.
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(int(value))
        return seconds if seconds > 0 else None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None:
        return None
    delta = int(moment.timestamp() - (time.time() if now is None else now))
    return float(delta) if delta > 0 else None


def _response_fields(headers: list[tuple[bytes, bytes]]) -> dict[bytes, str]:
    """The response headers the classification reads, by lower-case name (first value)."""
    fields: dict[bytes, str] = {}
    for name, value in headers:
        key = name.lower()
        if key in _CLASSIFY_HEADERS and key not in fields:
            fields[key] = value.decode("latin-1")
    return fields


def _written(fields: dict[bytes, str]) -> tuple[int, int, int] | None:
    """The Written counts of a response, or None when no Written header is present."""
    present = False
    counts: list[int] = []
    for name in _WRITTEN_KEYS:
        raw = fields.get(name)
        if raw is None:
            counts.append(0)
            continue
        present = True
        try:
            counts.append(max(0, int(raw.strip())))
        except ValueError:
            counts.append(0)
    return (counts[0], counts[1], counts[2]) if present else None


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
