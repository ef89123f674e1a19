"""``rwconsole run`` as a service with victoria-metrics: ctl status, live queue change, logs."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from tests.admin.service import Service, metric
from tests.conftest import ProcessManager, wait_until
from tests.engine.peers import VictoriaMetrics

pytestmark = [pytest.mark.peer]


def test_ctl_status_queue_and_no_loss(tmp_path: Path, processes: ProcessManager) -> None:
    vm = VictoriaMetrics(processes, tmp_path / "vm").start()
    service = Service(processes, tmp_path, vm.write_url).start()
    assert service.proc is not None
    pid = service.proc.pid
    mode = stat.S_IMODE(os.stat(service.socket).st_mode)
    assert mode == 0o600

    status = service.ctl_json("status")
    assert status["pid"] == pid
    (endpoint,) = status["endpoints"]  # type: ignore[misc]
    assert endpoint["name"] == "vm" and endpoint["max_shards"] == 5
    for key in ("shards", "shards_desired", "lag_seconds", "pending_samples"):
        assert key in endpoint
    assert "password" not in json.dumps(status)

    changed = service.ctl_json("queue", "vm", "max_shards=7")
    assert changed["ok"] is True
    wait_until(lambda: metric(service.metrics, "prometheus_remote_storage_shards_max", "vm") == 7)
    assert service.proc.poll() is None and service.proc.pid == pid
    before = service.out_total()
    wait_until(lambda: service.out_total() > before + 100)  # still forwarding

    # Validated as the console validates; the engine is never asked.
    bad = service.ctl("queue", "vm", "max_shards=0")
    assert bad.returncode == 2 and "max_shards" in bad.stderr
    bad = service.ctl("queue", "vm", "batch_send_deadline=soon")
    assert bad.returncode == 2 and "batch_send_deadline" in bad.stderr
    unknown = service.ctl("pause", "nope")
    assert unknown.returncode == 1 and "nope" in unknown.stderr

    logs = service.ctl("logs")
    assert logs.returncode == 0
    assert "queue_config changed: max_shards=7" in logs.stdout
    assert "admin: queue_config of vm: max_shards=7 from uid 0" in logs.stdout or (
        f"from uid {os.getuid()}" in logs.stdout
    )

    samples_in = metric(service.metrics, "prometheus_remote_storage_samples_in_total") or 0
    assert samples_in > 0
    assert service.stop() == 0
    stopped_ms = time.time() * 1000
    assert not service.socket.exists()

    def stored_before_stop() -> int:
        exported = vm.export('{__name__=~".+"}')
        return sum(1 for points in exported.values() for t, _v in points if t <= stopped_ms)

    # What a loaded machine could not flush within the deadline stays in the WAL and is
    # sent by the next start: every sample appended before the stop arrives, none is lost.
    service.start()
    wait_until(lambda: stored_before_stop() >= samples_in, timeout=60, interval=1.0)
    assert service.stop() == 0
    assert "Traceback" not in service.log.read_text()
