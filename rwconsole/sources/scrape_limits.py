"""Scrape limits as Prometheus has them, and reading a body within ``body_size_limit``.

``limits_of(job, defaults)`` resolves a job's limits (a job's own value, else
``[scrape_defaults]``, 0 meaning none). A violated limit raises
``LimitExceeded`` with Prometheus' message; the scrape then fails as a whole
(``up`` 0, nothing of the payload appended). ``BodyReader`` takes the response
in chunks and decompresses gzip incrementally, never holding more than the
limit (plus one chunk of compressed input), so a gzip bomb is cut off at the
limit instead of being inflated whole. Concatenated gzip members are read one
after the other, as Prometheus' reader does.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from rwconsole.labels import Labels, metric_name


class BodyError(Exception):
    """The body cannot be read (bad compression, unsupported encoding, over a limit)."""


class LimitExceeded(BodyError):
    """A scrape broke one of its limits; the message says which, as Prometheus does."""


@dataclass(frozen=True, slots=True)
class ScrapeLimits:
    """A job's effective limits (0: no limit)."""

    body_size_limit: int = 0
    sample_limit: int = 0
    label_limit: int = 0
    name_length: int = 0
    value_length: int = 0
    target_limit: int = 0


def limits_of(job: Any, defaults: Any) -> ScrapeLimits:
    """The job's limits: its own where set, else ``defaults`` (a ``[scrape_defaults]``)."""

    def pick(key: str) -> int:
        own = getattr(job, key, None)
        if own is not None:
            return int(own)
        return int(getattr(defaults, key, 0) or 0)

    return ScrapeLimits(
        pick("body_size_limit"),
        pick("sample_limit"),
        pick("label_limit"),
        pick("label_name_length_limit"),
        pick("label_value_length_limit"),
        pick("target_limit"),
    )


def check_label_limits(labels: Labels, limits: ScrapeLimits) -> None:
    """Raise ``LimitExceeded`` when a series breaks a label limit."""
    name = metric_name(labels)
    if limits.label_limit and len(labels) > limits.label_limit:
        raise LimitExceeded(
            f"label_limit exceeded (metric: {name[:50]}, number of labels: {len(labels)}, "
            f"limit: {limits.label_limit})"
        )
    for label, value in labels:
        if limits.name_length and len(label) > limits.name_length:
            raise LimitExceeded(
                f"label_name_length_limit exceeded (metric: {name[:50]}, label name: "
                f"{label[:50]}, length: {len(label)}, limit: {limits.name_length})"
            )
        if limits.value_length and len(value) > limits.value_length:
            raise LimitExceeded(
                f"label_value_length_limit exceeded (metric: {name[:50]}, label name: "
                f"{label[:50]}, value: {value[:50]!r}, length: {len(value)}, "
                f"limit: {limits.value_length})"
            )


class BodyReader:
    """Collects a response body, decompressing gzip as it comes, up to ``limit`` bytes."""

    def __init__(self, encoding: str, limit: int) -> None:
        if encoding not in ("", "identity", "gzip", "x-gzip"):
            raise BodyError(f"unsupported Content-Encoding {encoding!r}")
        self._limit = limit
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if "gzip" in encoding else None
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> None:
        inflate = self._inflate
        if inflate is None:
            self._add(chunk)
            return
        data = chunk
        while data:
            # Never inflate more than one byte past what the limit still allows.
            room = self._limit - self._size + 1 if self._limit else 0
            try:
                self._add(inflate.decompress(data, room))
            except zlib.error as exc:
                raise BodyError(f"gzip: invalid compressed body: {exc}") from None
            data = inflate.unconsumed_tail
            if inflate.eof:  # the next gzip member, if any, as Go's reader takes it
                data = inflate.unused_data
                if data:
                    inflate = self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def finish(self) -> bytes:
        if self._inflate is not None and not self._inflate.eof:
            raise BodyError("gzip: unexpected end of compressed body")
        return b"".join(self._parts)

    def _add(self, data: bytes) -> None:
        if not data:
            return
        self._size += len(data)
        if self._limit and self._size > self._limit:
            raise LimitExceeded("body size limit exceeded")
        self._parts.append(data)
