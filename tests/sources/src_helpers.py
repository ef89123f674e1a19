"""Helpers for the source tests: a recording Appender, remote-write bodies, a scrape target."""

from __future__ import annotations

import asyncio
import contextlib
import math
import struct
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import snappy

from rwconsole.http.server import HttpServer, Request, Response
from rwconsole.labels import Labels
from rwconsole.model import (
    Exemplar,
    HistogramSample,
    MetricMetadata,
    NoPreparedBatches,
    is_stale_nan,
)
from rwconsole.protocol.proto import remote_v1_pb2, remote_v2_pb2

V1_TYPE = "application/x-protobuf"
V2_TYPE = "application/x-protobuf;proto=io.prometheus.write.v2.Request"


class RecordingAppender(NoPreparedBatches):
    """Implements the Appender protocol in memory; only committed records are visible.

    Refs are get-or-create by label set, like the WAL's series table.
    """

    def __init__(self) -> None:
        self.labels_by_ref: dict[int, Labels] = {}
        self.refs_by_labels: dict[Labels, int] = {}
        self.samples: list[tuple[int, int, float]] = []
        self.exemplars: list[Exemplar] = []
        self.histograms: list[HistogramSample] = []
        self.metadata: list[MetricMetadata] = []
        self.commits = 0
        self._pending: dict[str, list[Any]] = {"s": [], "e": [], "h": [], "m": [], "st": []}
        self.start_timestamps: dict[tuple[int, int], int] = {}
        """Start timestamps of committed samples by (ref, timestamp), the nonzero ones."""

    def series_refs(self, labels: Sequence[Labels]) -> list[int]:
        refs = []
        for item in labels:
            assert list(item) == sorted(item), f"labels not sorted: {item}"
            ref = self.refs_by_labels.get(item)
            if ref is None:
                ref = len(self.refs_by_labels) + 1
                self.refs_by_labels[item] = ref
                self.labels_by_ref[ref] = item
            refs.append(ref)
        return refs

    def append_samples(
        self,
        refs: Sequence[int],
        timestamps: Sequence[int] | int,
        values: Sequence[float],
        start_timestamps: Sequence[int] | None = None,
    ) -> None:
        assert len(refs) == len(values)
        if isinstance(timestamps, int):
            stamps = [timestamps] * len(refs)
        else:
            stamps = list(timestamps)
            assert len(stamps) == len(refs)
        for ref in refs:
            assert ref in self.labels_by_ref, f"unknown ref {ref}"
        self._pending["s"].extend(zip(refs, stamps, values, strict=True))
        if start_timestamps is not None:
            assert len(start_timestamps) == len(refs)
            self._pending.setdefault("st", []).extend(
                ((ref, t), st)
                for ref, t, st in zip(refs, stamps, start_timestamps, strict=True)
                if st
            )

    def append_exemplars(self, exemplars: Sequence[Exemplar]) -> None:
        self._pending["e"].extend(exemplars)

    def append_histograms(self, histograms: Sequence[HistogramSample]) -> None:
        self._pending["h"].extend(histograms)

    def append_metadata(self, entries: Sequence[MetricMetadata]) -> None:
        self._pending["m"].extend(entries)

    def commit(self) -> None:
        self.samples.extend(self._pending["s"])
        self.exemplars.extend(self._pending["e"])
        self.histograms.extend(self._pending["h"])
        self.metadata.extend(self._pending["m"])
        self.start_timestamps.update(self._pending.get("st", ()))
        self._pending = {"s": [], "e": [], "h": [], "m": [], "st": []}
        self.commits += 1

    # --- views ---------------------------------------------------------------------------

    def series(self) -> dict[Labels, list[tuple[int, float]]]:
        """Committed samples per label set, in append order."""
        result: dict[Labels, list[tuple[int, float]]] = {}
        for ref, ts, value in self.samples:
            result.setdefault(self.labels_by_ref[ref], []).append((ts, value))
        return result

    def last_values(self) -> dict[Labels, float]:
        return {labels: points[-1][1] for labels, points in self.series().items()}

    def named(self, name: str) -> dict[Labels, list[tuple[int, float]]]:
        return {k: v for k, v in self.series().items() if dict(k).get("__name__") == name}

    def stale_series(self) -> set[Labels]:
        return {self.labels_by_ref[ref] for ref, _, value in self.samples if is_stale_nan(value)}

    def metadata_by_labels(self) -> dict[Labels, MetricMetadata]:
        return {self.labels_by_ref[m.ref]: m for m in self.metadata}


# --- remote-write bodies ---------------------------------------------------------------------


@dataclass
class WireSeries:
    labels: Labels
    samples: list[tuple[int, float]] = field(default_factory=list)
    exemplars: list[tuple[Labels, float, int]] = field(default_factory=list)
    metadata: tuple[int, str, str] | None = None  # (type, help, unit), v2 only


def encode_v1(
    series: Sequence[WireSeries], metadata: Sequence[tuple[str, int, str, str]] = ()
) -> bytes:
    request = remote_v1_pb2.WriteRequest()
    for item in series:
        ts = request.timeseries.add()
        for name, value in item.labels:
            ts.labels.add(name=name, value=value)
        for t, v in item.samples:
            ts.samples.add(value=v, timestamp=t)
        for labels, value, t in item.exemplars:
            ex = ts.exemplars.add(value=value, timestamp=t)
            for name, lv in labels:
                ex.labels.add(name=name, value=lv)
    for family, kind, help_text, unit in metadata:
        request.metadata.add(type=kind, metric_family_name=family, help=help_text, unit=unit)
    return snappy.compress(request.SerializeToString())


def encode_v2(series: Sequence[WireSeries]) -> bytes:
    request = remote_v2_pb2.Request()
    symbols: dict[str, int] = {"": 0}

    def ref(text: str) -> int:
        if text not in symbols:
            symbols[text] = len(symbols)
        return symbols[text]

    for item in series:
        ts = request.timeseries.add()
        for name, value in item.labels:
            ts.labels_refs.extend([ref(name), ref(value)])
        for t, v in item.samples:
            ts.samples.add(value=v, timestamp=t)
        for labels, value, t in item.exemplars:
            ex = ts.exemplars.add(value=value, timestamp=t)
            for name, lv in labels:
                ex.labels_refs.extend([ref(name), ref(lv)])
        if item.metadata is not None:
            kind, help_text, unit = item.metadata
            ts.metadata.type = kind
            ts.metadata.help_ref = ref(help_text)
            ts.metadata.unit_ref = ref(unit)
    request.symbols.extend(symbols)
    return snappy.compress(request.SerializeToString())


def same_float(a: float, b: float) -> bool:
    """Equal, NaN-aware and bit-exact for NaN payloads (staleness markers)."""
    if math.isnan(a) or math.isnan(b):
        return struct.pack("<d", a) == struct.pack("<d", b)
    return a == b


# --- a scrape target ------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serving_target() -> AsyncIterator[TargetServer]:
    """A started ``TargetServer``, stopped on exit."""
    server = TargetServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class TargetServer:
    """A scrape target on 127.0.0.1 whose answer the test changes between scrapes."""

    def __init__(self) -> None:
        self.body: bytes | str = ""
        self.content_type = "text/plain; version=0.0.4"
        self.status = 200
        self.delay = 0.0
        self.requests: list[Request] = []
        self._server = HttpServer(self._handle)

    async def start(self) -> None:
        await self._server.start("127.0.0.1", 0)

    async def stop(self) -> None:
        await self._server.stop()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._server.port}"

    async def _handle(self, request: Request) -> Response:
        self.requests.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        body = self.body.encode() if isinstance(self.body, str) else self.body
        return Response(self.status, body, {"Content-Type": self.content_type})
