"""The *_sd_configs tables: parsing, validation messages, and the discoverers built from them."""

from __future__ import annotations

import asyncio

import pytest

from rwconsole.config.errors import ConfigError
from rwconsole.config.load import parse_config
from rwconsole.sources.discovery.common import TargetGroup
from rwconsole.sources.discovery.providers import build_discoverers

HEAD = '[[endpoint]]\nurl = "http://127.0.0.1:1/w"\n[[scrape]]\njob_name = "j"\n'


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(HEAD + text)
    return [p.describe() for p in info.value.problems]


def test_every_table_parses_and_builds_its_discoverer() -> None:
    config = parse_config(
        HEAD
        + """
targets = ["a:1"]
[[scrape.static_configs]]
targets = ["b:2", "c:3"]
labels = { zone = "z1" }
[[scrape.file_sd_configs]]
files = ["t/*.json"]
refresh_interval = "10s"
[[scrape.http_sd_configs]]
url = "http://127.0.0.1:1/sd"
[[scrape.dns_sd_configs]]
names = ["db.example.test"]
type = "A"
port = 5432
[[scrape.kubernetes_sd_configs]]
role = "endpoints"
api_server = "http://127.0.0.1:1"
namespaces = { names = ["a", "b"] }
selectors = [{ role = "service", label = "team=x" }]
"""
    )
    scrape = config.scrape[0]
    assert scrape.file_sd_configs[0].refresh_interval == 10.0
    assert scrape.dns_sd_configs[0].refresh_interval == 30.0
    assert scrape.kubernetes_sd_configs[0].selectors[0].label == "team=x"
    providers = build_discoverers(scrape)
    assert list(providers) == [
        "static_configs",
        "file_sd_configs/0",
        "http_sd_configs/0",
        "dns_sd_configs/0",
        "kubernetes_sd_configs/0",
    ]
    reported: list[TargetGroup] = []

    async def first_static_report() -> None:
        static = providers["static_configs"]
        task = asyncio.create_task(static.run(reported.extend))
        await asyncio.sleep(0)
        static.stop()
        await task

    asyncio.run(first_static_report())
    assert [(g.source, [t["__address__"] for t in g.targets], g.labels) for g in reported] == [
        ("targets", ["a:1"], {}),
        ("0", ["b:2", "c:3"], {"zone": "z1"}),
    ]


def test_a_job_needs_targets_or_discovery() -> None:
    assert problems("") == [
        "scrape[0].targets: must list at least one host:port (or use *_sd_configs)"
    ]
    parse_config(HEAD + '[[scrape.file_sd_configs]]\nfiles = ["x.yml"]\n')


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[[scrape.static_configs]]\ntargets = ["nohost"]\n',
            "scrape[0].static_configs[0].targets[0]: expected host:port, got 'nohost' "
            "(missing ':port')",
        ),
        (
            '[[scrape.file_sd_configs]]\nfiles = ["t/*.txt"]\n',
            "scrape[0].file_sd_configs[0].files[0]: 't/*.txt' must end in one of "
            ".json, .yml, .yaml",
        ),
        (
            '[[scrape.file_sd_configs]]\nfiles = []\nrefresh_interval = "0s"\n',
            "scrape[0].file_sd_configs[0].files: must list at least one file or glob",
        ),
        (
            '[[scrape.http_sd_configs]]\nurl = "ftp://x/sd"\n',
            "scrape[0].http_sd_configs[0].url: scheme must be http or https, got 'ftp://x/sd'",
        ),
        (
            '[[scrape.dns_sd_configs]]\nnames = ["x"]\ntype = "TXT"\n',
            "scrape[0].dns_sd_configs[0].type: must be one of SRV, A, AAAA, MX, NS, got 'TXT'",
        ),
        (
            '[[scrape.dns_sd_configs]]\nnames = ["x"]\ntype = "A"\n',
            "scrape[0].dns_sd_configs[0].port: must be 1..65535 for A records",
        ),
        (
            '[[scrape.kubernetes_sd_configs]]\nrole = "deployment"\n',
            "scrape[0].kubernetes_sd_configs[0].role: must be one of node, pod, service, "
            "endpoints, endpointslice, ingress, got 'deployment'",
        ),
        (
            '[[scrape.kubernetes_sd_configs]]\nrole = "pod"\napi_server = "http://a"\n'
            'kubeconfig_file = "k"\n',
            "scrape[0].kubernetes_sd_configs[0]: api_server and kubeconfig_file are "
            "mutually exclusive",
        ),
        (
            '[[scrape.kubernetes_sd_configs]]\nrole = "pod"\nbearer_token = "t"\n',
            "scrape[0].kubernetes_sd_configs[0].bearer_token: HTTP client settings need "
            "api_server (with in-cluster configuration they come from there)",
        ),
        (
            '[[scrape.kubernetes_sd_configs]]\nrole = "pod"\n'
            'selectors = [{ role = "service", label = "a=b" }]\n',
            "scrape[0].kubernetes_sd_configs[0].selectors[0].role: role 'pod' accepts "
            "selectors for pod, got 'service'",
        ),
    ],
)
def test_rules(text: str, expected: str) -> None:
    assert expected in problems(text)


def test_unknown_key_in_a_discovery_table() -> None:
    found = problems('[[scrape.dns_sd_configs]]\nnames = ["x"]\nrecord_type = "A"\n')
    assert any(p.startswith("scrape[0].dns_sd_configs[0].record_type:") for p in found)
