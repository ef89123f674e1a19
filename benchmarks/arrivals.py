"""What a benchmark receiver notes of each remote-write body: when it came and how old it is.

``first_timestamp(body)`` reads the timestamp of a body's first sample (remote
write 1.0, snappy) from the start of its snappy stream only: decompressing a
whole 40 KB body costs a receiver about half a millisecond in Python, the few
hundred bytes that hold the first series and its first sample about 30 µs. A
forwarder sends a queue's samples oldest first, so a body's first sample tells
whether the body still carries a backlog.

``Arrivals`` keeps the arrival time, the first ``KEPT_BYTES`` of the body and
its size (a copy of a few KB: the receiver answers as fast as without it) and
reads the timestamps only when it writes them out as JSON lines;
``backlog_delivered`` reads those back and answers when the last body of a
backlog arrived, which times a drain at the receiver the same way for every
forwarder.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path

_PREFIX = 512
"""Bytes of the uncompressed body decoded first; more while the first sample is not in it."""
KEPT_BYTES = 4096
"""Bytes of each compressed body a receiver keeps to read the first sample from later."""


def _varint(data: bytes | bytearray, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def snappy_prefix(body: bytes, size: int) -> bytes:
    """At least the first ``size`` bytes of a raw snappy stream's output (all of it if
    shorter), or as much as ``body`` gives when it is only the start of a stream."""
    total, pos = _varint(body, 0)
    want = min(size, total)
    out = bytearray()
    end = len(body)
    while len(out) < want and pos < end:
        tag = body[pos]
        kind = tag & 3
        pos += 1
        if kind == 0:
            length = tag >> 2
            if length >= 60:
                extra = length - 59
                length = int.from_bytes(body[pos : pos + extra], "little")
                pos += extra
            length += 1
            out += body[pos : pos + length]  # cut short where a kept start ends
            pos += length
            continue
        size_of_offset = (1, 1, 2, 4)[kind]
        if pos + size_of_offset > end:
            break  # the kept start ends inside this copy's tag
        if kind == 1:
            length = ((tag >> 2) & 7) + 4
            offset = ((tag >> 5) << 8) | body[pos]
        else:
            length = (tag >> 2) + 1
            offset = int.from_bytes(body[pos : pos + size_of_offset], "little")
        pos += size_of_offset
        if not 0 < offset <= len(out):
            raise ValueError(f"snappy copy at byte {pos} reaches before the output's start")
        start = len(out) - offset
        if length <= offset:
            out += out[start : start + length]
        else:  # an overlapping copy repeats the last ``offset`` bytes
            for i in range(length):
                out.append(out[start + i])
    return bytes(out)


def _field(data: bytes, start: int, end: int, number: int, wire_type: int) -> tuple[int, int]:
    """The first field ``number`` of the message in ``data[start:end]``: a varint's
    (value, 0) or a length-delimited field's (start, end). IndexError if it is not in
    ``data`` (cut off), ValueError if it has another wire type than ``wire_type``."""
    pos = start
    while pos < end:
        key, pos = _varint(data, pos)
        field, wire = key >> 3, key & 7
        if field == number and wire != wire_type:
            raise ValueError(f"field {number} at byte {pos} has wire type {wire}")
        if wire == 0:
            value, pos = _varint(data, pos)
            if field == number:
                return value, 0
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            if field == number:
                if pos + length > len(data):
                    raise IndexError("field cut off")
                return pos, pos + length
            pos += length
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"wire type {wire} at byte {pos}")
    raise IndexError("field not in the decoded part")


def _first_timestamp_in(data: bytes) -> int | None:
    """WriteRequest.timeseries[0].samples[0].timestamp; None when the first series has none."""
    series = _field(data, 0, len(data), 1, 2)
    try:
        sample = _field(data, *series, 2, 2)
    except IndexError:
        if series[1] <= len(data):
            return None  # the whole first series is here and holds no float sample
        raise
    try:
        timestamp, _ = _field(data, *sample, 2, 0)
    except IndexError:
        return 0  # proto3 leaves a zero timestamp out
    return timestamp - (1 << 64) if timestamp >= 1 << 63 else timestamp


def first_timestamp(body: bytes) -> int | None:
    """The first sample's timestamp (ms) of a snappy remote-write 1.0 body, None if it has
    none or if ``body`` is the start of one that ends before its first sample."""
    size = _PREFIX
    while True:
        data = snappy_prefix(body, size)
        try:
            return _first_timestamp_in(data)
        except IndexError:
            total, _ = _varint(body, 0)
            if size >= total or len(data) < size:
                return None
            size *= 4


class Arrivals:
    """Per body received: monotonic arrival time, first sample's timestamp, body bytes."""

    def __init__(self) -> None:
        self._kept: list[tuple[float, bytes, int]] = []

    def note(self, body: bytes) -> None:
        self._kept.append((time.monotonic(), body[:KEPT_BYTES], len(body)))

    def rows(self) -> list[tuple[float, int | None, int]]:
        rows = []
        for arrived, start, size in self._kept:
            try:
                first = first_timestamp(start)
            except (ValueError, IndexError):
                first = None
            rows.append((arrived, first, size))
        return rows

    def write(self, path: Path) -> None:
        with path.open("w") as out:
            for row in self.rows():
                out.write(json.dumps(row) + "\n")


def read_arrivals(path: Path) -> list[tuple[float, int | None, int]]:
    """The notes ``Arrivals.write`` wrote; none if the receiver wrote none (it was killed)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        arrived, first, size = json.loads(line)
        rows.append((arrived, first, size))
    return rows


def backlog_delivered(
    rows: Iterable[tuple[float, int | None, int]], before_ms: int
) -> tuple[float | None, int, int]:
    """When the last body whose first sample is older than ``before_ms`` arrived (None if
    none did), and how many such bodies and bytes there were."""
    last: float | None = None
    bodies = size = 0
    for arrived, first, length in rows:
        if first is not None and first < before_ms:
            last = arrived if last is None else max(last, arrived)
            bodies += 1
            size += length
    return last, bodies, size
