"""Reload in place against real receivers: VictoriaMetrics throughout, Prometheus 2.42 added
and removed. VictoriaMetrics' export returns every raw sample, staleness markers as null."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import httpx
import pytest
from conftest import ProcessManager, free_port, wait_until
from peers import PrometheusReceiver, VictoriaMetrics
from reload_helpers import MetricsPoller, metric, running_engine, stale_instances, write_config

from rwconsole.labels import Labels
from rwconsole.model import is_stale_nan
from rwconsole.wal.tools import iter_dump

pytestmark = [pytest.mark.peer, pytest.mark.slow]


def prometheus_appended(prom: PrometheusReceiver) -> float:
    text = httpx.get(f"http://127.0.0.1:{prom.port}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("prometheus_tsdb_head_samples_appended_total")
    )


def test_reload_with_real_receivers(tmp_path: Path, processes: ProcessManager) -> None:
    vm = VictoriaMetrics(processes, tmp_path / "vm").start()
    prom = PrometheusReceiver(processes, tmp_path / "prom").start()
    vm_target, prom_target = f"127.0.0.1:{vm.port}", f"127.0.0.1:{prom.port}"
    listen = f"127.0.0.1:{free_port()}"
    path, data = tmp_path / "rw.toml", tmp_path / "data"

    def configure(endpoints: dict[str, tuple[str, int]], targets: list[str]) -> None:
        write_config(
            path,
            data,
            listen,
            endpoints,
            targets,
            job="peers",
            interval="200ms",
        )

    configure({"vm": (vm.write_url, 2)}, [vm_target])
    with running_engine(path, flush_deadline=10.0) as engine, MetricsPoller(listen) as poller:
        wait_until(lambda: engine.snapshot().samples_in_total > 2000)
        # Data piles up for vm while the reloads happen.
        engine.pause("vm").result(10)
        wait_until(lambda: engine.snapshot().endpoint("vm").pending_samples > 0)
        configure({"vm": (vm.write_url, 4), "prom": (prom.write_url, 2)}, [vm_target, prom_target])
        report = engine.reload().result(60)
        assert report.ok, report
        assert report.changes == (
            "endpoint prom added",
            "endpoint vm: queue_config changed (queue_config applied live)",
            f"scrape target peers/{prom_target} added",
        )
        assert engine.endpoints[0].queue.paused  # vm is the same queue, still paused
        wait_until(lambda: prometheus_appended(prom) > 1000)
        engine.resume("vm").result(10)

        configure({"vm": (vm.write_url, 4)}, [vm_target])
        report = engine.reload().result(60)
        assert report.ok and len(report.changes) == 2, report
        appended = engine.samples_in.value
        wait_until(lambda: engine.snapshot().samples_in_total > appended + 500)
        assert metric(listen, "rwconsole_config_last_reload_successful") == 1
    # (the poller stops before the engine)
    assert not poller.failures, poller.failures[:3]

    wal: dict[Labels, list[tuple[int, float]]] = defaultdict(list)
    for item in iter_dump(data / "wal"):
        if item.kind == "sample":
            wal[item.labels].append((item.timestamp, item.value))
    # VictoriaMetrics drops plain NaN samples (not staleness markers): not expected there.
    want = {
        labels: [t for t, v in points if is_stale_nan(v) or not math.isnan(v)]
        for labels, points in wal.items()
    }
    total = sum(map(len, want.values()))
    exported = wait_until(
        lambda: (lambda e: e if sum(map(len, e.values())) >= total else None)(
            vm.export('{__name__!=""}')
        ),
        timeout=60,
    )
    # vm was there throughout: every sample of every series exactly once, in order.
    assert sum(map(len, exported.values())) == total
    for labels, times in want.items():
        assert [t for t, _ in exported.get(labels, [])] == times, labels
    # Only the removed target's series ended; unchanged series (synthetic, vm's own
    # metrics) have no staleness marker, neither from the reloads nor from the stop.
    for table in (wal, exported):
        assert stale_instances(table) == {prom_target}
    assert len([labels for labels in wal if dict(labels).get("job") == "synthetic"]) == 20
    # prom got data while it was configured.
    assert prometheus_appended(prom) > 1000
    assert prom.api("/api/v1/query", query='count({job="synthetic"})')["data"]["result"]
