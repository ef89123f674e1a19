"""Prometheus 2.42 as the oracle for service discovery and relabelling.

The same scrape job (file_sd with several groups; relabel_configs with keep,
drop, replace, hashmod and labelmap, a ``__param_`` and a ``__metrics_path__``
rewrite; metric_relabel_configs dropping a metric and a label) is given to
Prometheus and to rwconsole. Their ``/api/v1/targets`` must agree on the
active targets' labels and on the dropped targets, and both remote-write to
one victoria-metrics (external label ``replica`` telling them apart), where
the series sets must be equal.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from conftest import ProcessManager, free_port, peer_binary, wait_for_port, wait_until

from rwconsole.config.load import parse_config
from rwconsole.engine import Engine
from tests.engine.peers import VictoriaMetrics
from tests.engine.text_targets import text_targets

pytestmark = pytest.mark.timeout(180)

JOB = "oracle"


def _exposition(path: str) -> bytes:
    url = urlsplit(path)
    module = parse_qs(url.query).get("module", ["none"])[0]
    return (
        "# HELP app_requests_total Requests served.\n"
        "# TYPE app_requests_total counter\n"
        'app_requests_total{code="200",secret="s3"} 10\n'
        'app_requests_total{code="500",secret="s3"} 1\n'
        "# TYPE debug_internal gauge\n"
        "debug_internal 5\n"
        f'probe_module{{module="{module}"}} 1\n'
        f'path_seen{{path="{url.path}"}} 1\n'
    ).encode()


@pytest.fixture
def targets() -> Iterator[list[str]]:
    with text_targets(5, _exposition) as addresses:
        yield addresses


def _rules(dropped: str) -> list[dict[str, object]]:
    return [
        {"source_labels": ["__address__"], "regex": "127\\.0\\.0\\.1:.*", "action": "keep"},
        {"source_labels": ["__address__"], "regex": dropped, "action": "drop"},
        {"source_labels": ["__meta_zone"], "target_label": "zone"},
        {"regex": "__meta_(zone|rack)", "replacement": "meta_$1", "action": "labelmap"},
        {
            "source_labels": ["__address__"],
            "modulus": 3,
            "target_label": "__tmp_shard",
            "action": "hashmod",
        },
        {"source_labels": ["__tmp_shard"], "target_label": "shard"},
        {"source_labels": ["env"], "target_label": "__param_module", "replacement": "mod_$1"},
        {
            "source_labels": ["env"],
            "regex": "dev",
            "target_label": "__metrics_path__",
            "replacement": "/custom/metrics",
        },
    ]


METRIC_RULES: list[dict[str, object]] = [
    {"source_labels": ["__name__"], "regex": "debug_.*", "action": "drop"},
    {"regex": "secret", "action": "labeldrop"},
]


def _yaml_rules(rules: list[dict[str, object]]) -> str:
    return json.dumps(rules)  # JSON is YAML


def _toml_rules(table: str, rules: list[dict[str, object]]) -> str:
    out = []
    for rule in rules:
        out.append(f"[[scrape.{table}]]")
        out += [f"{key} = {json.dumps(value)}" for key, value in rule.items()]
    return "\n".join(out)


def _prometheus_api(port: int, path: str) -> dict:
    response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10)
    response.raise_for_status()
    return response.json()["data"]


def _target_view(data: dict) -> tuple[list[tuple], list[tuple]]:
    # Active targets' discoveredLabels are left out: Prometheus 2.42 relabels them in
    # place, so they show labels a rule added (here __tmp_shard) in place of others.
    active = sorted(
        (
            t["scrapePool"],
            tuple(sorted(t["labels"].items())),
            t["scrapeUrl"],
            t["health"],
        )
        for t in data["activeTargets"]
    )
    dropped = sorted(tuple(sorted(t["discoveredLabels"].items())) for t in data["droppedTargets"])
    return active, dropped


def test_targets_and_series_equal_prometheus(
    tmp_path: Path, processes: ProcessManager, targets: list[str]
) -> None:
    prometheus = peer_binary("prometheus")
    vm = VictoriaMetrics(processes, tmp_path / "vm").start()
    sd_file = tmp_path / "targets.json"
    sd_file.write_text(
        json.dumps(
            [
                {"targets": targets[:3], "labels": {"env": "prod", "__meta_zone": "a"}},
                {
                    "targets": targets[3:],
                    "labels": {"env": "dev", "__meta_zone": "b", "__meta_rack": "r9"},
                },
                {"targets": ["192.0.2.1:9100"], "labels": {"env": "elsewhere"}},
            ]
        )
    )
    dropped = targets[1].replace(".", "\\.")
    prom_port = free_port()
    prom_dir = tmp_path / "prom"
    prom_dir.mkdir()
    (prom_dir / "prometheus.yml").write_text(
        f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  external_labels: {{replica: prometheus}}
scrape_configs:
  - job_name: {JOB}
    params: {{extra: ["x"]}}
    file_sd_configs: [{{files: ["{sd_file}"], refresh_interval: 1s}}]
    relabel_configs: {_yaml_rules(_rules(dropped))}
    metric_relabel_configs: {_yaml_rules(METRIC_RULES)}
remote_write:
  - url: {vm.write_url}
    queue_config: {{batch_send_deadline: 1s}}
"""
    )
    processes.start(
        [
            prometheus,
            f"--config.file={prom_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={prom_dir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ]
    )
    wait_for_port(prom_port)
    http_port = free_port()
    config = parse_config(
        f"""
external_labels = {{ replica = "rwconsole" }}
[storage]
path = "{tmp_path / "rw"}"
[http]
listen_address = "127.0.0.1:{http_port}"
[[endpoint]]
url = "{vm.write_url}"
[endpoint.queue_config]
batch_send_deadline = "1s"
[[scrape]]
job_name = "{JOB}"
scrape_interval = "1s"
scrape_timeout = "1s"
params = {{ extra = ["x"] }}
[[scrape.file_sd_configs]]
files = ["{sd_file}"]
refresh_interval = "1s"
{_toml_rules("relabel_configs", _rules(dropped))}
{_toml_rules("metric_relabel_configs", METRIC_RULES)}
"""
    )
    engine = Engine(config, flush_deadline=5.0)
    engine.start()
    try:

        def both_scraped() -> tuple | None:
            ours = httpx.get(f"http://127.0.0.1:{http_port}/api/v1/targets", timeout=10).json()
            theirs = _prometheus_api(prom_port, "/api/v1/targets")
            views = (_target_view(ours["data"]), _target_view(theirs))
            healthy = all(len(v[0]) == 4 and all(t[3] == "up" for t in v[0]) for v in views)
            return views if healthy else None

        ours, theirs = wait_until(both_scraped, timeout=60, interval=0.5)
        assert ours == theirs
        (_, _, url, *_), *_ = [t for t in ours[0] if dict(t[1])["env"] == "dev"]
        assert "/custom/metrics?" in url and "module=mod_dev" in url

        def series_sets() -> tuple[set, set] | None:
            exported = vm.export(f'{{job="{JOB}"}}')
            split: dict[str, set] = {"prometheus": set(), "rwconsole": set()}
            for labels, _samples in exported.items():
                values = dict(labels)
                replica = values.pop("replica", "")
                split.setdefault(replica, set()).add(tuple(sorted(values.items())))
            prom, rw = split["prometheus"], split["rwconsole"]
            return (prom, rw) if prom and prom == rw else None

        try:
            _, rw = wait_until(series_sets, timeout=60, interval=1.0)
        except AssertionError:
            exported = vm.export(f'{{job="{JOB}"}}')
            raise AssertionError(f"series differ: {sorted(exported)}") from None
        names = {dict(s)["__name__"] for s in rw}
        assert "debug_internal" not in names and "app_requests_total" in names
        assert not any("secret" in dict(s) for s in rw)
        assert {dict(s)["module"] for s in rw if dict(s)["__name__"] == "probe_module"} == {
            "mod_prod",
            "mod_dev",
        }
    finally:
        engine.stop()
        time.sleep(0)  # the processes fixture stops Prometheus and victoria-metrics
