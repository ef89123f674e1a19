"""dns_sd against a real dnsmasq (Debian's package) on loopback: SRV, A, AAAA, MX."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import ProcessManager, free_port, peer_binary, wait_until

from rwconsole.sources.discovery.dns import NAMESERVER_ENV, DNSDiscoverer, make_resolver

pytestmark = [pytest.mark.anyio, pytest.mark.peer]

ZONE = "sd.test"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _dnsmasq_answers(port: int) -> bool:
    import dns.message
    import dns.query

    try:
        query = dns.message.make_query(f"web1.{ZONE}", "A")
        dns.query.udp(query, "127.0.0.1", port=port, timeout=0.5)
        return True
    except Exception:
        return False


@pytest.fixture
def dnsmasq(processes: ProcessManager, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    binary = peer_binary("dnsmasq")
    port = free_port()
    processes.start(
        [
            binary,
            "--no-daemon",
            f"--port={port}",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--user=root",
            f"--local=/{ZONE}/",
            f"--srv-host=_metrics._tcp.{ZONE},web1.{ZONE},9100,0,10",
            f"--srv-host=_metrics._tcp.{ZONE},web2.{ZONE},9200,0,10",
            f"--host-record=web1.{ZONE},127.0.0.11",
            f"--host-record=web2.{ZONE},127.0.0.12,fd00::12",
            f"--mx-host={ZONE},mail.{ZONE},10",
        ]
    )
    wait_until(lambda: _dnsmasq_answers(port), timeout=20)
    monkeypatch.setenv(NAMESERVER_ENV, f"127.0.0.1:{port}")
    yield port


def targets(groups: list) -> list[dict[str, str]]:  # type: ignore[type-arg]
    return sorted((t for g in groups for t in g.targets), key=lambda t: t["__address__"])


async def test_srv_records(dnsmasq: int) -> None:
    name = f"_metrics._tcp.{ZONE}"
    groups = await DNSDiscoverer([name], "SRV", 0, 30, resolver=make_resolver()).refresh()
    assert [g.source for g in groups] == [name]
    assert targets(groups) == [
        {
            "__address__": f"web1.{ZONE}:9100",
            "__meta_dns_name": name,
            "__meta_dns_srv_record_target": f"web1.{ZONE}",
            "__meta_dns_srv_record_port": "9100",
            "__meta_dns_mx_record_target": "",
            "__meta_dns_ns_record_target": "",
        },
        {
            "__address__": f"web2.{ZONE}:9200",
            "__meta_dns_name": name,
            "__meta_dns_srv_record_target": f"web2.{ZONE}",
            "__meta_dns_srv_record_port": "9200",
            "__meta_dns_mx_record_target": "",
            "__meta_dns_ns_record_target": "",
        },
    ]


async def test_a_aaaa_and_mx_records(dnsmasq: int) -> None:
    a = await DNSDiscoverer([f"web2.{ZONE}"], "A", 80, 30, resolver=make_resolver()).refresh()
    assert [t["__address__"] for t in targets(a)] == ["127.0.0.12:80"]
    assert targets(a)[0]["__meta_dns_name"] == f"web2.{ZONE}"
    aaaa = await DNSDiscoverer([f"web2.{ZONE}"], "AAAA", 80, 30, resolver=make_resolver()).refresh()
    assert [t["__address__"] for t in targets(aaaa)] == ["[fd00::12]:80"]
    mx = await DNSDiscoverer([ZONE], "MX", 25, 30, resolver=make_resolver()).refresh()
    assert [(t["__address__"], t["__meta_dns_mx_record_target"]) for t in targets(mx)] == [
        (f"mail.{ZONE}:25", f"mail.{ZONE}")
    ]


async def test_missing_name_is_an_empty_group(dnsmasq: int) -> None:
    names = [f"nothing.{ZONE}", f"web1.{ZONE}"]
    groups = await DNSDiscoverer(names, "A", 80, 30, resolver=make_resolver()).refresh()
    assert [(g.source, len(g.targets)) for g in groups] == [(names[0], 0), (names[1], 1)]


async def test_unreachable_server_keeps_last_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NAMESERVER_ENV, f"127.0.0.1:{free_port()}")
    resolver = make_resolver()
    resolver.lifetime = 0.5
    discoverer = DNSDiscoverer([f"web1.{ZONE}"], "A", 80, 30, resolver=resolver)
    updates: list[object] = []
    await discoverer._refresh_once(updates.append)
    assert updates == []
    assert discoverer.error.startswith(f"A lookup of 'web1.{ZONE}': ")
