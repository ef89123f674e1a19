"""The WAL's disk: growth, time to full and what the size budget must truncate.

``DiskWatch`` samples the WAL's size and its filesystem's free space once per
snapshot, smooths the growth rate and says when the budget or the filesystem
runs full at that rate. ``budget_cut`` picks the oldest segments to fold away
when the WAL is over ``[wal] max_size`` with ``on_full = "drop_oldest"``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rwconsole.snapshot import WalDiskSnapshot

if TYPE_CHECKING:
    from rwconsole.wal.storage import WalStorage

GROWTH_SMOOTHING = 0.2
"""Weight of the newest sample in the growth rate (about the last 5 samples count)."""


class DiskWatch:
    """Follows one WAL's disk use; ``sample`` is called about once a second."""

    def __init__(self, wal: WalStorage, on_full: str) -> None:
        self._wal = wal
        self.on_full = on_full
        self._last: tuple[float, int] | None = None
        self.growth = 0.0
        self.samples_dropped = 0.0

    @property
    def drops_oldest(self) -> bool:
        return bool(self._wal.max_size) and self.on_full == "drop_oldest"

    def sample(self, now: float, append_failures: float) -> WalDiskSnapshot:
        wal = self._wal
        size = wal.size_bytes()
        if self._last is not None and now > self._last[0]:
            rate = (size - self._last[1]) / (now - self._last[0])
            self.growth += GROWTH_SMOOTHING * (rate - self.growth)
        self._last = (now, size)
        free = wal.free_bytes()
        seconds, full_by = self._time_to_full(size, free)
        error = wal.append_error
        return WalDiskSnapshot(
            size_bytes=size,
            limit_bytes=wal.max_size,
            on_full=self.on_full,
            free_bytes=free,
            growth_bytes_per_second=self.growth,
            seconds_to_full=seconds,
            full_by=full_by,
            append_error=str(error) if error is not None else "",
            append_failures=append_failures,
            samples_dropped=self.samples_dropped,
        )

    def _time_to_full(self, size: int, free: int | None) -> tuple[float | None, str]:
        """Seconds until the budget or the filesystem is full, whichever comes first."""
        limits: list[tuple[float, str]] = []
        if self._wal.max_size:
            limits.append((max(0, self._wal.max_size - size), "budget"))
        if free is not None:
            limits.append((max(0, free - self._wal.reserve_bytes()), "filesystem"))
        if not limits:
            return None, ""
        room, full_by = min(limits)
        if room <= 0:
            return 0.0, full_by
        if self.growth <= 0:
            return None, full_by
        return room / self.growth, full_by

    def budget_cut(self) -> int | None:
        """First segment to keep so the WAL fits its budget again; None when it fits.

        The oldest segments go first; when the finished ones are not enough
        the active one goes too (the truncation starts a new segment first).
        """
        wal = self._wal
        excess = wal.size_bytes() - wal.max_size
        if not wal.max_size or excess <= 0:
            return None
        active = wal.position()[0]
        freed = 0
        for info in wal.segments_info():
            if info.index >= active:
                break
            freed += info.size
            if freed >= excess:
                return info.index + 1
        return active + 1
