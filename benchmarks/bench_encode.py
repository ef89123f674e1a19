"""Benchmark the remote-write encoders: ns per sample and compressed bytes per sample.

Builds 2000-sample batches from realistic series (6-10 labels, node-exporter and
Kubernetes style names and values), encodes them with the fast v1 and v2
encoders and, for comparison, with the generated protobuf classes, and prints
the time per sample and the snappy-compressed size per sample.

Usage: python benchmarks/bench_encode.py [--batch 2000] [--series 500] [--rounds 200]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from rwconsole.labels import Labels, make_labels
from rwconsole.model import MetricMetadata, MetricType
from rwconsole.protocol.encode import (
    compress,
    encode_series_v1,
    encode_write_request_v1,
    encode_write_request_v2,
)
from rwconsole.protocol.proto import remote_v1_pb2

_METRICS = [
    ("node_cpu_seconds_total", MetricType.COUNTER),
    ("node_network_receive_bytes_total", MetricType.COUNTER),
    ("container_memory_working_set_bytes", MetricType.GAUGE),
    ("http_requests_total", MetricType.COUNTER),
    ("kube_pod_container_status_restarts_total", MetricType.COUNTER),
]


def make_series(count: int, rng: random.Random) -> list[tuple[Labels, MetricMetadata]]:
    series = []
    for i in range(count):
        name, mtype = _METRICS[i % len(_METRICS)]
        pairs = {
            "__name__": name,
            "job": "kubernetes-pods",
            "instance": f"10.{i % 7}.{i % 251}.{i % 13}:9100",
            "cluster": "prod-eu-west-1",
            "namespace": f"team-{i % 17}",
            "pod": f"api-server-{rng.getrandbits(32):08x}-{i % 97:05d}",
        }
        for extra in range(rng.randint(0, 4)):
            pairs[("container", "mode", "cpu", "code")[extra]] = f"v{rng.randint(0, 30)}"
        meta = MetricMetadata(i, mtype, "", f"{name} measured by the exporter.")
        series.append((make_labels(pairs), meta))
    return series


def make_batch(series_count: int, batch: int, seed: int = 1) -> tuple:
    rng = random.Random(seed)
    series = make_series(series_count, rng)
    t0 = 1_700_000_000_000
    labels, timestamps, values, metas = [], [], [], []
    for i in range(batch):
        lab, meta = series[i % series_count]
        labels.append(lab)
        metas.append(meta)
        timestamps.append(t0 + (i // series_count) * 15_000)
        values.append(float(rng.randint(0, 10**6)) if i % 3 else rng.random() * 100)
    return labels, timestamps, values, metas


def per_sample_ns(fn: Callable[[], object], batch: int, rounds: int) -> float:
    fn()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        best = min(best, (time.perf_counter() - start) / rounds)
    return best / batch * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--series", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()

    labels, timestamps, values, metas = make_batch(args.series, args.batch)
    key_by_series = {lab: encode_series_v1(lab) for lab in set(labels)}
    series_keys = [key_by_series[lab] for lab in labels]

    def v1() -> bytes:
        return encode_write_request_v1(series_keys, timestamps, values)

    def v2() -> bytes:
        return encode_write_request_v2(labels, timestamps, values, metadata=metas)

    def v2_no_metadata() -> bytes:
        return encode_write_request_v2(labels, timestamps, values)

    def reference_v1() -> bytes:
        request = remote_v1_pb2.WriteRequest()
        for lab, t, v in zip(labels, timestamps, values, strict=True):
            ts = request.timeseries.add()
            for name, value in lab:
                ts.labels.add(name=name, value=value)
            ts.samples.add(value=v, timestamp=t)
        return request.SerializeToString()

    assert reference_v1() == v1(), "fast v1 encoder differs from the protobuf package"

    print(f"batch {args.batch} samples over {args.series} series, {args.rounds} rounds")
    reference_ns = per_sample_ns(reference_v1, args.batch, max(1, args.rounds // 10))
    for name, fn in [
        ("v1 fast", v1),
        ("v2 fast (metadata)", v2),
        ("v2 fast (no metadata)", v2_no_metadata),
        ("v1 protobuf objects", reference_v1),
    ]:
        rounds = args.rounds if "protobuf" not in name else max(1, args.rounds // 10)
        ns = reference_ns if fn is reference_v1 else per_sample_ns(fn, args.batch, rounds)
        body = fn()
        packed = compress(body)
        ns_snappy = per_sample_ns(lambda body=body: compress(body), args.batch, rounds)
        print(
            f"{name:24s} {ns:8.0f} ns/sample ({reference_ns / ns:4.1f}x protobuf)  "
            f"+snappy {ns_snappy:5.0f} ns/sample  "
            f"raw {len(body) / args.batch:6.1f} B/sample  "
            f"compressed {len(packed) / args.batch:6.2f} B/sample"
        )


if __name__ == "__main__":
    main()
