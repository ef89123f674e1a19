"""Scrape targets from discovered groups: defaults, ``relabel_configs`` and the URL.

``build_targets(job, groups, rules)`` turns a job's target groups into the
targets to scrape and the targets dropped, with Prometheus 2.x semantics: each
target's discovered labels are the group's labels under its own, plus the
job's defaults where absent (``job``, ``__scheme__``, ``__metrics_path__``,
``__scrape_interval__``, ``__scrape_timeout__``) and the first value of every
configured parameter as ``__param_<name>``. Then ``relabel_configs`` run (the
one relabel engine, ``rwconsole.relabel``). A kept target needs an
``__address__`` (a missing port becomes 80 or 443 by scheme), valid interval
and timeout labels, and loses its ``__meta_*`` labels; ``instance`` defaults
to the address. Labels starting with ``__`` never reach the series: they
shape the URL (``__scheme__``, ``__address__``, ``__metrics_path__``,
``__param_*``) and the schedule (``__scrape_interval__``,
``__scrape_timeout__``).

A target is a pure function of the job's config, its rules and the discovered
labels, so a job keeps what its last delivery made (``TargetSet.made``) and
hands it to the next one: a refresh that finds the targets it found before
(every ``refresh_interval`` of a file or HTTP SD does) relabels none of them.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from rwconsole.config.durations import DurationError, format_duration, parse_duration
from rwconsole.labels import Labels, make_labels
from rwconsole.relabel import Rule, relabel
from rwconsole.sources.discovery.common import ADDRESS_LABEL, META_PREFIX, TargetGroup

SCHEME_LABEL = "__scheme__"
METRICS_PATH_LABEL = "__metrics_path__"
INTERVAL_LABEL = "__scrape_interval__"
TIMEOUT_LABEL = "__scrape_timeout__"
PARAM_PREFIX = "__param_"
RESERVED_PREFIX = "__"


@dataclass(frozen=True, slots=True)
class Target:
    """One target to scrape: its final labels and where and how often to scrape it."""

    job: str
    labels: Labels
    """Every label after relabelling, ``__address__`` and friends included (the identity)."""
    discovered: Labels
    """The labels before relabelling (Prometheus' ``discoveredLabels``)."""
    url: str
    params: tuple[tuple[str, str], ...]
    interval: float
    timeout: float

    @property
    def series_labels(self) -> Labels:
        """The labels every series of this target gets (no ``__`` labels)."""
        return tuple(p for p in self.labels if not p[0].startswith(RESERVED_PREFIX))

    @property
    def identity(self) -> Labels:
        """The labels that make it this target: all but its schedule.

        A target whose interval or timeout changes goes on as the same target.
        """
        return tuple(p for p in self.labels if p[0] not in (INTERVAL_LABEL, TIMEOUT_LABEL))

    @property
    def instance(self) -> str:
        return dict(self.labels).get("instance", "")

    @property
    def full_url(self) -> str:
        """The URL with its query, as Prometheus shows ``scrapeUrl``."""
        if not self.params:
            return self.url
        return f"{self.url}?{urlencode(sorted(self.params))}"


@dataclass(frozen=True, slots=True)
class DroppedTarget:
    """A discovered target that is not scraped, and why."""

    job: str
    discovered: Labels
    reason: str
    """``relabel_configs[i] (action)`` for a rule that dropped it, else the error."""


Made = dict[Labels, tuple[Target, Labels] | str]
"""Discovered labels → the target made of them with its identity, or why it is dropped."""


@dataclass(slots=True)
class TargetSet:
    """What one job's groups resolve to."""

    active: list[Target] = field(default_factory=list)
    dropped: list[DroppedTarget] = field(default_factory=list)
    identities: list[Labels] = field(default_factory=list)
    """``Target.identity`` of each active target, in the same order."""
    made: Made = field(default_factory=dict)
    """What each discovered label set of these groups made (for the next ``build_targets``)."""


def build_targets(
    config: Any,
    groups: Sequence[TargetGroup],
    rules: Sequence[Rule],
    previous: Made | None = None,
) -> TargetSet:
    """The active (deduplicated, in discovery order) and dropped targets of a job.

    ``previous`` is the ``made`` of the job's last call with the same config and
    rules: label sets found there are not relabelled again.
    """
    result = TargetSet()
    made_now = result.made
    known = previous or {}
    seen: set[Labels] = set()
    defaults = _defaults(config)
    params = [(PARAM_PREFIX + name, values[0]) for name, values in config.params.items() if values]
    for group in groups:
        for target in group.targets:
            merged = {**config.labels, **group.labels, **target}
            for name, value in defaults:
                if not merged.get(name):
                    merged[name] = value
            merged.update(params)  # set, not defaulted, as Prometheus does
            discovered = make_labels(merged)
            made = made_now.get(discovered) or known.get(discovered)
            if made is None:
                made = _populate(config, discovered, rules)
                if not isinstance(made, str):
                    made = (made, made.identity)
            made_now[discovered] = made
            if isinstance(made, str):
                result.dropped.append(DroppedTarget(config.job_name, discovered, made))
            elif made[1] not in seen:
                seen.add(made[1])
                result.active.append(made[0])
                result.identities.append(made[1])
    return result


def _defaults(config: Any) -> list[tuple[str, str]]:
    return [
        ("job", config.job_name),
        (INTERVAL_LABEL, format_duration(config.scrape_interval)),
        # A job's timeout over its interval (only possible for a config made in
        # code: loading refuses it) is taken as the interval.
        (TIMEOUT_LABEL, format_duration(min(config.scrape_timeout, config.scrape_interval))),
        (METRICS_PATH_LABEL, config.metrics_path),
        (SCHEME_LABEL, config.scheme),
    ]


def _populate(config: Any, discovered: Labels, rules: Sequence[Rule]) -> Target | str:
    """The target made from ``discovered``, or the reason it is dropped."""
    after = relabel(discovered, rules) if rules else discovered
    if after is None:
        return _dropping_rule(discovered, rules)
    labels = dict(after)
    address = labels.get(ADDRESS_LABEL, "")
    if not address:
        return "no __address__ label after relabelling"
    scheme = labels.get(SCHEME_LABEL, "")
    if not _has_port(address):
        if scheme in ("http", ""):
            address += ":80"
        elif scheme == "https":
            address += ":443"
        else:
            return f"invalid scheme {scheme!r}"
        labels[ADDRESS_LABEL] = address
    if "/" in address:
        return f"{address!r} is not a valid hostname"
    try:
        interval = _duration(labels.get(INTERVAL_LABEL, ""))
        timeout = _duration(labels.get(TIMEOUT_LABEL, ""))
    except DurationError as exc:
        return f"invalid scrape interval or timeout label: {exc}"
    if interval <= 0:
        return "scrape interval cannot be 0"
    if timeout <= 0:
        return "scrape timeout cannot be 0"
    if timeout > interval:
        return (
            f"scrape timeout cannot be greater than scrape interval "
            f"({format_duration(timeout)} > {format_duration(interval)})"
        )
    for name in [n for n in labels if n.startswith(META_PREFIX)]:
        del labels[name]
    labels.setdefault("instance", address)
    final = make_labels(labels)
    path = labels.get(METRICS_PATH_LABEL, "")
    if not path.startswith("/"):
        path = "/" + path
    url = f"{scheme or 'http'}://{address}{path}"
    return Target(
        config.job_name,
        final,
        discovered,
        url,
        _params(config, final),
        interval,
        timeout,
    )


_DURATIONS: dict[str, float] = {}
"""Interval and timeout labels parsed before: every target of a job has the same few."""


def _duration(text: str) -> float:
    seconds = _DURATIONS.get(text)
    if seconds is None:
        seconds = parse_duration(text)  # raises before anything is kept
        if len(_DURATIONS) >= 256:
            _DURATIONS.clear()
        _DURATIONS[text] = seconds
    return seconds


def _params(config: Any, labels: Labels) -> tuple[tuple[str, str], ...]:
    if not config.params:
        first = bisect_left(labels, (PARAM_PREFIX,))  # labels are sorted by name
        if first == len(labels) or not labels[first][0].startswith(PARAM_PREFIX):
            return ()
    params = {name: list(values) for name, values in config.params.items()}
    for name, value in labels:
        if name.startswith(PARAM_PREFIX):
            key = name[len(PARAM_PREFIX) :]
            if params.get(key):
                params[key][0] = value
            else:
                params[key] = [value]
    return tuple((name, value) for name, values in params.items() for value in values)


def _has_port(address: str) -> bool:
    if address.startswith("["):  # [ipv6]:port
        return "]:" in address
    return ":" in address


def _dropping_rule(labels: Labels, rules: Sequence[Rule]) -> str:
    """Which rule dropped ``labels`` (the chain is run again one rule at a time)."""
    current: Labels | None = labels
    for index, rule in enumerate(rules):
        current = relabel(current, [rule]) if current is not None else None
        if current is None:
            return f"relabel_configs[{index}] ({rule.action})"
    return "relabel_configs left no labels"
