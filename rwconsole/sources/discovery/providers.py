"""Build a scrape job's discoverers from its ``[[scrape]]`` table.

Provider names are ``<key>/<index>`` (``file_sd_configs/0``), and
``static_configs`` for the static groups: the job's ``targets`` shorthand
(source ``targets``) plus one group per ``static_configs`` entry (source: its
index).
"""

from __future__ import annotations

from rwconsole.config import schema
from rwconsole.sources.discovery.common import Discoverer, TargetGroup
from rwconsole.sources.discovery.dns import DNSDiscoverer
from rwconsole.sources.discovery.file import FileDiscoverer
from rwconsole.sources.discovery.http import HTTPDiscoverer
from rwconsole.sources.discovery.kubernetes import KubernetesDiscoverer
from rwconsole.sources.discovery.static import StaticDiscoverer, static_group

STATIC_PROVIDER = "static_configs"


def static_groups(scrape: schema.ScrapeConfig) -> list[TargetGroup]:
    """The job's ``targets`` shorthand and ``static_configs`` as groups, in that order."""
    static = [
        static_group(str(i), c.targets, c.labels) for i, c in enumerate(scrape.static_configs)
    ]
    if scrape.targets:
        static.insert(0, static_group("targets", scrape.targets, {}))
    return static


def build_discoverers(scrape: schema.ScrapeConfig) -> dict[str, Discoverer]:
    """Provider name → discoverer for one job.

    Raises ``ValueError`` naming the setting when an HTTP client cannot be built
    (unreadable CA file, bad proxy URL, unreadable kubeconfig).
    """
    providers: dict[str, Discoverer] = {}
    static = static_groups(scrape)
    if static:
        providers[STATIC_PROVIDER] = StaticDiscoverer(static)
    for i, f in enumerate(scrape.file_sd_configs):
        providers[f"file_sd_configs/{i}"] = FileDiscoverer(f.files, f.refresh_interval)
    for i, h in enumerate(scrape.http_sd_configs):
        providers[f"http_sd_configs/{i}"] = HTTPDiscoverer(h)
    for i, d in enumerate(scrape.dns_sd_configs):
        providers[f"dns_sd_configs/{i}"] = DNSDiscoverer(
            d.names, d.type, d.port, d.refresh_interval
        )
    for i, k in enumerate(scrape.kubernetes_sd_configs):
        providers[f"kubernetes_sd_configs/{i}"] = KubernetesDiscoverer(k)
    return providers
