"""What a scrape target keeps between scrapes (and across a reload of the same target).

``CacheState`` maps series text to WAL refs, holds the staleness set, the
families' metadata and the exemplars last appended; ``Steady`` is the previous
body's ``SteadyShape`` with the refs its samples resolved to. While a steady
shape holds, the key → ref map and the staleness set are not kept beside it:
both follow from the shape's keys and its refs, and are rebuilt on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rwconsole.labels import Labels
from rwconsole.model import PreparedBatch
from rwconsole.sources.steady import SteadyShape

DROPPED = -1
"""The ref cached for a series that ``metric_relabel_configs`` drop."""


class CacheState:
    """What survives a reload of the same target: refs by series text, staleness set.

    While a steady shape holds and says it all, ``refs`` and ``tracked`` are not
    kept: they are the shape's keys paired with its refs, and those refs as a
    set. They are rebuilt on first use, and before ``steady`` changes.
    """

    __slots__ = (
        "_refs",
        "_steady",
        "_tracked",
        "exemplars",
        "family_meta",
        "full_scrapes",
        "misses",
        "report_refs",
    )

    def __init__(self) -> None:
        self._refs: dict[str, int] | None = {}
        self._tracked: set[int] | None = set()
        self._steady: Steady | None = None
        self.family_meta: dict[str, tuple[int, str, str]] = {}
        self.exemplars: dict[int, tuple[Labels, float, int]] = {}
        self.report_refs: list[int] | None = None
        self.full_scrapes = 0
        """Scrapes in a row that took the full path."""
        self.misses = 0
        """Learned shapes in a row that the next body did not fit."""

    @property
    def refs(self) -> dict[str, int]:
        if self._refs is None:
            self._refs = self.known()
        return self._refs

    @refs.setter
    def refs(self, refs: dict[str, int]) -> None:
        self._refs = refs

    @property
    def tracked(self) -> set[int]:
        if self._tracked is None:
            assert self._steady is not None
            self._tracked = set(self._steady.refs)
        return self._tracked

    @tracked.setter
    def tracked(self, tracked: set[int]) -> None:
        self._tracked = tracked

    @property
    def steady(self) -> Steady | None:
        return self._steady

    @steady.setter
    def steady(self, steady: Steady | None) -> None:
        if steady is not self._steady and self._steady is not None:
            self.refs  # noqa: B018 (rebuilt from the shape that is going away)
            self.tracked  # noqa: B018
        self._steady = steady

    def known(self) -> dict[str, int]:
        """``refs``, without keeping it when it has to be rebuilt (safe in a worker thread)."""
        if self._refs is not None:
            return self._refs
        steady = self._steady
        assert steady is not None
        return dict(zip(steady.shape.keys(), steady.refs, strict=True))

    def refs_kept(self) -> dict[str, int] | None:
        """``refs`` if it is kept, else None."""
        return self._refs

    def tracked_count(self) -> int:
        if self._tracked is None:
            assert self._steady is not None
            return len(self._steady.refs)
        return len(self._tracked)

    def forget(self, refs: set[int]) -> None:
        """Drop ``refs`` (collected by the WAL) from the state.

        A steady shape naming none of them stays, lean: truncation collects the
        series of targets that went away, and the targets still answering keep
        their shortcut instead of all rebuilding their key maps at once.
        """
        steady = self._steady
        if steady is not None and not refs.isdisjoint(steady.refs):
            self.steady = None  # rebuilds refs and tracked from the shape first
        if self._refs is not None and not refs.isdisjoint(self._refs.values()):
            self._refs = {key: ref for key, ref in self._refs.items() if ref not in refs}
        if self._tracked is not None:  # not kept: it is the shape's refs, none collected
            self._tracked -= refs
        for ref in refs.intersection(self.exemplars):
            del self.exemplars[ref]
        if self.report_refs is not None and not refs.isdisjoint(self.report_refs):
            self.report_refs = None

    def forget_keys(self) -> None:
        """Resolve every series anew at the next scrape (its limits changed).

        The staleness set stays: series that are gone still get their markers.
        """
        self.steady = None  # rebuilds refs and tracked from the shape first
        self._refs = {}

    def lean(self) -> None:
        """Stop keeping ``refs`` and ``tracked`` where the steady shape implies them."""
        steady = self._steady
        if steady is None or steady.keep is not None:
            return
        count = len(steady.refs)
        if self._refs is not None and len(self._refs) == count:
            # Every key of the body is in refs (its refs were resolved from it), the
            # keys are distinct (their refs are), so refs holds exactly those keys.
            self._refs = None
        if self._tracked is not None and len(self._tracked) == count:
            self._tracked = None  # a steady shape is valid only while tracked == set(refs)


@dataclass(slots=True, eq=False)
class Steady:
    """The previous body's shape and what its samples resolved to.

    Valid while the state it was learned with holds: ``tracked`` is the set of
    ``refs`` and every family's metadata is recorded as the body states it.
    """

    shape: SteadyShape
    refs: Sequence[int]
    """Refs to append, in body order, a series exposed twice only once."""
    keep: list[int] | None
    """Positions of the values of ``refs`` when the body repeats a series."""
    prepared: PreparedBatch | None = None
    """The appender's prepared batch of ``refs``, made at the first steady append."""
    start_timestamps: bool = False
    """The ``start_timestamps`` setting the shape was learned under."""
    start_sources: tuple[list[int], list[int]] | None = None
    """Samples with a ``_created`` sample, and its index, in body order (start timestamps)."""
