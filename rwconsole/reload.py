"""What a config reload changes: a pure diff of the running config against a new one.

``diff_configs(old, new)`` sorts every difference into what the engine can
apply in place (per endpoint: retuned queue, new HTTP client, new labelling,
or a restart of that endpoint alone; per source: the scrape targets added and
removed, a restarted receiver or generator) and what only a restart of the
process applies (``restart_needed``). ``effective`` is the new config with
those restart-only keys kept at their running values, which is what the
engine runs after the reload.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from rwconsole.config import schema

CLIENT_FIELDS = frozenset(
    {f.name for f in dataclasses.fields(schema.HTTPClientConfig)}
    | {"remote_timeout", "headers", "sigv4", "azuread"}
)
"""Endpoint keys that only the HTTP client uses: a change swaps the client."""
LABELLING_FIELDS = frozenset({"write_relabel_config", "send_exemplars", "send_native_histograms"})
"""Endpoint keys the queue applies when it resolves a series: a change resets its series cache."""
LIVE_FIELDS = CLIENT_FIELDS | LABELLING_FIELDS | {"queue_config"}
"""Endpoint keys a running endpoint takes in place. Any other change (``url``,
``protobuf_message``, ``metadata_config``, keys added later) stops that endpoint alone
(its buffered data flushed within the flush deadline) and starts it again at its
delivered position."""
SYNTHETIC_LIVE_FIELDS = frozenset({"series", "interval", "churn"})
"""Synthetic keys the running generator takes without a restart."""
IGNORED_FIELDS = frozenset({"backfill"})
"""Only a new endpoint reads ``backfill``; changing it later changes nothing."""

_RESTART_ONLY = (
    ("storage.path", lambda c: c.storage.path),
    ("http.listen_address", lambda c: c.http.listen_address),
    ("wal.segment_size", lambda c: c.wal.segment_size),
    ("wal.compression", lambda c: c.wal.compression),
    ("demo.enabled", lambda c: c.demo.enabled),
)

Target = tuple[str, str]
"""(job name, target address)."""


@dataclass(frozen=True)
class EndpointChange:
    """An endpoint in both configs whose settings differ (``fields``: top-level keys)."""

    name: str
    fields: frozenset[str]

    @property
    def restart(self) -> bool:
        return bool(self.fields - LIVE_FIELDS)

    @property
    def retune(self) -> bool:
        return "queue_config" in self.fields

    @property
    def client(self) -> bool:
        return bool(self.fields & CLIENT_FIELDS)

    @property
    def labelling(self) -> bool:
        return bool(self.fields & LABELLING_FIELDS)

    def describe(self) -> str:
        if self.restart:
            how = "restarted at its delivered position"
        else:
            parts = []
            if self.retune:
                parts.append("queue_config applied live")
            if self.client:
                parts.append("HTTP client rebuilt")
            if self.labelling:
                parts.append("series relabelled")
            how = ", ".join(parts)
        return f"endpoint {self.name}: {', '.join(sorted(self.fields))} changed ({how})"


@dataclass(frozen=True)
class ConfigDiff:
    """Every difference between two configs, sorted by how the engine applies it."""

    endpoints_added: tuple[str, ...] = ()
    endpoints_removed: tuple[str, ...] = ()
    endpoints_changed: tuple[EndpointChange, ...] = ()
    endpoints_unchanged: tuple[str, ...] = ()
    external_labels: bool = False
    scrape_jobs_changed: tuple[str, ...] = ()
    """Jobs added, removed or with other settings."""
    targets_added: tuple[Target, ...] = ()
    targets_removed: tuple[Target, ...] = ()
    receiver: bool = False
    synthetic: str = ""
    """"" (unchanged), "added", "removed", "retuned" (series, interval, churn: applied
    to the running generator) or "restarted" (its series are replaced)."""
    wal: tuple[str, ...] = ()
    """WAL keys applied live (truncation timing)."""
    lifecycle: bool = False
    restart_needed: tuple[str, ...] = ()
    """Keys that changed but apply only after a restart (not applied)."""
    scrape_defaults: bool = False

    @property
    def empty(self) -> bool:
        return not self.describe() and not self.restart_needed

    def describe(self) -> list[str]:
        """One line per applied change, for the log and the reload report."""
        lines = [f"endpoint {name} added" for name in self.endpoints_added]
        lines += [
            f"endpoint {name} removed (its delivery position is kept)"
            for name in self.endpoints_removed
        ]
        lines += [change.describe() for change in self.endpoints_changed]
        if self.external_labels:
            lines.append("external_labels changed (every endpoint relabels its series)")
        lines += [f"scrape job {name} changed" for name in self.scrape_jobs_changed]
        if self.scrape_defaults:
            lines.append("scrape_defaults changed (every job's limits are checked again)")
        lines += [f"scrape target {job}/{target} added" for job, target in self.targets_added]
        lines += [
            f"scrape target {job}/{target} removed (its series marked stale)"
            for job, target in self.targets_removed
        ]
        if self.receiver:
            lines.append("receiver restarted")
        if self.synthetic:
            lines.append(f"synthetic source {self.synthetic}")
        lines += [f"wal.{key} changed" for key in self.wal]
        if self.lifecycle:
            lines.append("http.enable_lifecycle changed")
        return lines


def diff_configs(old: schema.Config, new: schema.Config) -> ConfigDiff:
    """The differences from ``old`` (running) to ``new``; endpoints match by queue name."""
    old_endpoints = {e.queue_name(): e for e in old.endpoint}
    new_endpoints = {e.queue_name(): e for e in new.endpoint}
    changed = []
    unchanged = []
    for name, config in new_endpoints.items():
        before = old_endpoints.get(name)
        if before is None:
            continue
        fields = _changed_fields(before, config) - IGNORED_FIELDS
        if fields:
            changed.append(EndpointChange(name, frozenset(fields)))
        else:
            unchanged.append(name)
    old_targets = _targets(old.scrape)
    new_targets = _targets(new.scrape)
    old_jobs = {job.job_name: job for job in old.scrape}
    new_jobs = {job.job_name: job for job in new.scrape}
    jobs_changed = sorted(
        name
        for name in old_jobs.keys() | new_jobs.keys()
        if _without_targets(old_jobs.get(name)) != _without_targets(new_jobs.get(name))
    )
    return ConfigDiff(
        endpoints_added=tuple(n for n in new_endpoints if n not in old_endpoints),
        endpoints_removed=tuple(n for n in old_endpoints if n not in new_endpoints),
        endpoints_changed=tuple(changed),
        endpoints_unchanged=tuple(unchanged),
        external_labels=old.external_labels != new.external_labels,
        scrape_jobs_changed=tuple(jobs_changed),
        targets_added=tuple(t for t in new_targets if t not in old_targets),
        targets_removed=tuple(t for t in old_targets if t not in new_targets),
        receiver=old.receiver != new.receiver,
        synthetic=_synthetic_change(old.synthetic, new.synthetic),
        wal=tuple(sorted(_changed_fields(old.wal, new.wal) - {"segment_size", "compression"})),
        lifecycle=old.http.enable_lifecycle != new.http.enable_lifecycle,
        restart_needed=tuple(key for key, read in _RESTART_ONLY if read(old) != read(new)),
        scrape_defaults=old.scrape_defaults != new.scrape_defaults,
    )


def effective(old: schema.Config, new: schema.Config) -> schema.Config:
    """``new`` with the restart-only keys kept as ``old`` runs them."""
    return dataclasses.replace(
        new,
        storage=old.storage,
        http=dataclasses.replace(new.http, listen_address=old.http.listen_address),
        wal=dataclasses.replace(
            new.wal, segment_size=old.wal.segment_size, compression=old.wal.compression
        ),
        demo=old.demo,
    )


def _synthetic_change(
    old: schema.SyntheticConfig | None, new: schema.SyntheticConfig | None
) -> str:
    if old == new:
        return ""
    if old is None:
        return "added"
    if new is None:
        return "removed"
    return "retuned" if _changed_fields(old, new) <= SYNTHETIC_LIVE_FIELDS else "restarted"


def _changed_fields(old: object, new: object) -> set[str]:
    return {
        f.name
        for f in dataclasses.fields(old)  # type: ignore[arg-type]
        if getattr(old, f.name) != getattr(new, f.name)
    }


def _targets(jobs: Iterable[schema.ScrapeConfig]) -> list[Target]:
    return [(job.job_name, target) for job in jobs for target in job.targets]


def _without_targets(job: schema.ScrapeConfig | None) -> schema.ScrapeConfig | None:
    return None if job is None else dataclasses.replace(job, targets=[])
