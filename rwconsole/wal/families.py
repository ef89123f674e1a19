"""Metric families: which family a series belongs to, and metadata kept per family.

Shared by the WAL (its latest metadata per series) and the 1.0 metadata sender,
which lists one entry per family. Knows nothing about files or records.
"""

from __future__ import annotations

from rwconsole.model import MetricMetadata, MetricType

_FAMILY_SUFFIXES = {
    MetricType.HISTOGRAM: ("_bucket", "_sum", "_count", "_created"),
    MetricType.GAUGEHISTOGRAM: ("_bucket", "_gsum", "_gcount"),
    MetricType.SUMMARY: ("_sum", "_count", "_created"),
}


def family_of(name: str, metric_type: int) -> str:
    """The metric family of series ``name`` (``x`` for ``x_bucket`` of a histogram)."""
    for suffix in _FAMILY_SUFFIXES.get(metric_type, ()):  # type: ignore[call-overload]
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


class _Use:
    """One metadata value of a family: the shared object and the live series carrying it."""

    __slots__ = ("count", "name", "value")

    def __init__(self, value: MetricMetadata, name: str) -> None:
        self.value = value
        self.count = 0
        self.name = name
        """Metric name of the series that set it last (``x_bucket`` for family ``x``)."""


class MetadataTable:
    """Latest metadata per series ref, kept once per metric family.

    A series' value is a ``MetricMetadata`` shared by every series of its
    family with the same type, unit and help (its ``ref`` is 0), so a million
    series of a few thousand families hold a few thousand objects. Each family
    counts the live series per value and remembers the value set last, which
    is what a listing per family (the 1.0 metadata sender) reads: its cost
    follows the number of families, not of series.

    Every ``set`` is logged (the ref, under a growing version number), so a
    reader that cached metadata per series (a 2.0 queue) asks ``changed_since``
    which refs to look up again; the log keeps the newest ``CHANGE_LOG_SIZE``.
    """

    __slots__ = ("_by_ref", "_changes", "_changes_base", "_families", "_latest")

    CHANGE_LOG_SIZE = 1 << 16

    def __init__(self) -> None:
        self._by_ref: dict[int, MetricMetadata] = {}
        self._families: dict[str, dict[MetricMetadata, _Use]] = {}
        self._latest: dict[str, _Use] = {}
        self._changes: list[int] = []
        self._changes_base = 0
        """The version of ``_changes[0]``."""

    @property
    def version(self) -> int:
        """Grows by one with every ``set``."""
        return self._changes_base + len(self._changes)

    def changed_since(self, version: int) -> list[int] | None:
        """Refs whose metadata was set after ``version``; None when the log no longer
        reaches back that far (then any ref may have changed)."""
        if version < self._changes_base:
            return None
        return self._changes[version - self._changes_base :]

    def get(self, ref: int) -> MetricMetadata | None:
        return self._by_ref.get(ref)

    def same(self, ref: int, meta: MetricMetadata) -> bool:
        """True when ``ref`` already carries ``meta``'s type, unit and help."""
        old = self._by_ref.get(ref)
        return (
            old is not None
            and old.type == meta.type
            and old.unit == meta.unit
            and old.help == meta.help
        )

    def set(self, ref: int, name: str, meta: MetricMetadata) -> None:
        """Record ``meta`` for series ``ref`` whose metric name is ``name``."""
        self.remove(ref, name)
        family_name = family_of(name, meta.type)
        uses = self._families.get(family_name)
        if uses is None:
            uses = self._families[family_name] = {}
        key = MetricMetadata(0, meta.type, meta.unit, meta.help)
        use = uses.get(key)
        if use is None:
            use = uses[key] = _Use(key, name)
        use.count += 1
        use.name = name
        self._latest[family_name] = use
        self._by_ref[ref] = use.value
        changes = self._changes
        changes.append(ref)
        if len(changes) > self.CHANGE_LOG_SIZE:
            half = len(changes) // 2
            del changes[:half]
            self._changes_base += half

    def remove(self, ref: int, name: str) -> None:
        """Forget series ``ref`` (metric name ``name``)."""
        value = self._by_ref.pop(ref, None)
        if value is None:
            return
        family_name = family_of(name, value.type)
        uses = self._families.get(family_name)
        use = uses.get(value) if uses is not None else None
        if uses is None or use is None:
            return
        use.count -= 1
        if use.count > 0:
            return
        del uses[value]
        if self._latest.get(family_name) is use:
            if uses:
                # A value other live series of the family carry takes over.
                self._latest[family_name] = next(reversed(uses.values()))
            else:
                del self._latest[family_name]
                del self._families[family_name]

    def families(self) -> list[tuple[str, str, MetricMetadata]]:
        """(family, metric name of a series with it, metadata) per family, sorted."""
        return sorted((family, use.name, use.value) for family, use in self._latest.items())
