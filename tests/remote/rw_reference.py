"""Reference builders for the remote-write tests: the same requests made with the
generated protobuf classes, so the fast encoders can be compared with them."""

from __future__ import annotations

from collections.abc import Sequence

from rwconsole.labels import Labels
from rwconsole.model import Exemplar, Histogram, MetricMetadata
from rwconsole.protocol.proto import remote_v1_pb2, remote_v2_pb2


def fill_histogram(msg, h: Histogram, timestamp: int, start_timestamp: int | None = None) -> None:
    if h.is_float:
        msg.count_float = h.count
        msg.zero_count_float = h.zero_count
        msg.positive_counts.extend(h.positive_buckets)
        msg.negative_counts.extend(h.negative_buckets)
    else:
        msg.count_int = int(h.count)
        msg.zero_count_int = int(h.zero_count)
        msg.positive_deltas.extend(int(d) for d in h.positive_buckets)
        msg.negative_deltas.extend(int(d) for d in h.negative_buckets)
    msg.sum = h.sum
    msg.schema = h.schema
    msg.zero_threshold = h.zero_threshold
    for offset, length in h.positive_spans:
        msg.positive_spans.add(offset=offset, length=length)
    for offset, length in h.negative_spans:
        msg.negative_spans.add(offset=offset, length=length)
    msg.reset_hint = int(h.reset_hint)
    msg.timestamp = timestamp
    msg.custom_values.extend(h.custom_values)
    if start_timestamp is not None:
        msg.start_timestamp = start_timestamp


def _add_labels(container, labels: Labels) -> None:
    for name, value in labels:
        container.add(name=name, value=value)


def reference_v1(
    labels: Sequence[Labels],
    timestamps: Sequence[int],
    values: Sequence[float],
    exemplars: Sequence[tuple[Labels, Exemplar]] = (),
    histograms: Sequence[tuple[Labels, int, Histogram]] = (),
    metadata: Sequence[tuple[str, MetricMetadata]] = (),
) -> remote_v1_pb2.WriteRequest:
    request = remote_v1_pb2.WriteRequest()
    for lab, t, v in zip(labels, timestamps, values, strict=True):
        ts = request.timeseries.add()
        _add_labels(ts.labels, lab)
        ts.samples.add(value=v, timestamp=t)
    for lab, t, h in histograms:
        ts = request.timeseries.add()
        _add_labels(ts.labels, lab)
        fill_histogram(ts.histograms.add(), h, t)
    for lab, ex in exemplars:
        ts = request.timeseries.add()
        _add_labels(ts.labels, lab)
        msg = ts.exemplars.add(value=ex.value, timestamp=ex.timestamp)
        _add_labels(msg.labels, ex.labels)
    for name, meta in metadata:
        request.metadata.add(
            type=int(meta.type), metric_family_name=name, help=meta.help, unit=meta.unit
        )
    return request


def reference_v2(
    symbols: Sequence[str],
    labels: Sequence[Labels],
    timestamps: Sequence[int],
    values: Sequence[float],
    start_timestamps: Sequence[int] | None = None,
    metadata: Sequence[MetricMetadata | None] | None = None,
    histograms: Sequence[tuple] = (),
    exemplars: Sequence[tuple] = (),
) -> remote_v2_pb2.Request:
    """The v2 request with refs taken from the given symbol list."""
    index = {s: i for i, s in enumerate(symbols)}

    def refs(lab: Labels) -> list[int]:
        return [index[s] for pair in lab for s in pair]

    def set_meta(ts, meta: MetricMetadata | None) -> None:
        if meta is not None:
            ts.metadata.type = int(meta.type)
            ts.metadata.help_ref = index[meta.help]
            ts.metadata.unit_ref = index[meta.unit]

    request = remote_v2_pb2.Request(symbols=list(symbols))
    n = len(labels)
    starts = start_timestamps or [0] * n
    metas = metadata or [None] * n
    for lab, t, v, st, meta in zip(labels, timestamps, values, starts, metas, strict=True):
        ts = request.timeseries.add(labels_refs=refs(lab))
        ts.samples.add(value=v, timestamp=t, start_timestamp=st)
        set_meta(ts, meta)
    for lab, t, h, *rest in histograms:
        st = rest[0] if rest else 0
        meta = rest[1] if len(rest) > 1 else None
        ts = request.timeseries.add(labels_refs=refs(lab))
        fill_histogram(ts.histograms.add(), h, t, st)
        set_meta(ts, meta)
    for lab, ex, *rest in exemplars:
        ts = request.timeseries.add(labels_refs=refs(lab))
        ts.exemplars.add(labels_refs=refs(ex.labels), value=ex.value, timestamp=ex.timestamp)
        set_meta(ts, rest[0] if rest else None)
    return request
