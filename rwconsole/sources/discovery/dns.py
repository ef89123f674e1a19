"""``dns_sd_configs``: targets from SRV, A, AAAA, MX or NS records, re-resolved on an interval.

Each queried name is one group (source: the name). Every target carries
``__meta_dns_name`` and the ``__meta_dns_srv_record_target``/``_port``,
``__meta_dns_mx_record_target`` and ``__meta_dns_ns_record_target`` labels
(empty where the record type has none), as Prometheus sets them. SRV targets
use the record's port; the other types use the configured ``port``. A name
that does not exist, or has no record of the type, gives an empty group;
any other failure keeps the last good groups.

Name servers and search domains come from ``/etc/resolv.conf``. For tests
only, ``RWCONSOLE_DNS_NAMESERVER=host:port`` sends every query to that server
instead.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

import dns.asyncresolver
import dns.exception
import dns.resolver

from rwconsole.sources.discovery.common import (
    ADDRESS_LABEL,
    DiscoveryError,
    PeriodicDiscoverer,
    TargetGroup,
)

RECORD_TYPES = ("SRV", "A", "AAAA", "MX", "NS")
NAMESERVER_ENV = "RWCONSOLE_DNS_NAMESERVER"
RESOLV_CONF = "/etc/resolv.conf"
QUERY_TIMEOUT = 10.0

NAME_LABEL = "__meta_dns_name"
SRV_TARGET_LABEL = "__meta_dns_srv_record_target"
SRV_PORT_LABEL = "__meta_dns_srv_record_port"
MX_TARGET_LABEL = "__meta_dns_mx_record_target"
NS_TARGET_LABEL = "__meta_dns_ns_record_target"


def make_resolver(resolv_conf: str = RESOLV_CONF) -> dns.asyncresolver.Resolver:
    """A resolver configured from ``resolv_conf``, or from ``RWCONSOLE_DNS_NAMESERVER``."""
    override = os.environ.get(NAMESERVER_ENV, "")
    if override:
        host, _, port = override.rpartition(":")
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [host.strip("[]")]
        resolver.port = int(port)
    else:
        try:
            resolver = dns.asyncresolver.Resolver(filename=resolv_conf)
        except dns.exception.DNSException as exc:
            raise ValueError(f"dns_sd_configs: cannot use {resolv_conf}: {exc}") from None
    resolver.lifetime = QUERY_TIMEOUT
    return resolver


class DNSDiscoverer(PeriodicDiscoverer):
    """One ``dns_sd_configs`` entry."""

    def __init__(
        self,
        names: Sequence[str],
        record_type: str,
        port: int,
        refresh_interval: float,
        *,
        resolver: dns.asyncresolver.Resolver | None = None,
    ) -> None:
        super().__init__(refresh_interval)
        self._names = list(names)
        self._type = record_type.upper()
        self._port = port
        self._resolver = resolver or make_resolver()

    async def refresh(self) -> list[TargetGroup]:
        return list(await asyncio.gather(*(self._lookup(name) for name in self._names)))

    async def _lookup(self, name: str) -> TargetGroup:
        group = TargetGroup(name)
        try:
            answer = await self._resolver.resolve(name, self._type, search=True)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return group
        except dns.exception.DNSException as exc:
            raise DiscoveryError(f"{self._type} lookup of {name!r}: {exc}") from None
        for record in answer:
            group.targets.append(self._target(name, record))
        return group

    def _target(self, name: str, record: object) -> dict[str, str]:
        srv_target = srv_port = mx_target = ns_target = ""
        if self._type == "SRV":
            srv_target = _host(record.target)  # type: ignore[attr-defined]
            srv_port = str(record.port)  # type: ignore[attr-defined]
            address = _join(srv_target, srv_port)
        elif self._type == "MX":
            mx_target = _host(record.exchange)  # type: ignore[attr-defined]
            address = _join(mx_target, str(self._port))
        elif self._type == "NS":
            ns_target = _host(record.target)  # type: ignore[attr-defined]
            address = _join(ns_target, str(self._port))
        else:
            address = _join(record.address, str(self._port))  # type: ignore[attr-defined]
        return {
            ADDRESS_LABEL: address,
            NAME_LABEL: name,
            SRV_TARGET_LABEL: srv_target,
            SRV_PORT_LABEL: srv_port,
            MX_TARGET_LABEL: mx_target,
            NS_TARGET_LABEL: ns_target,
        }


def _host(name: object) -> str:
    return str(name).rstrip(".")


def _join(host: str, port: str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
