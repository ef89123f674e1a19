"""Remote-write protocol negotiation of one endpoint: 2.0 with fallback to 1.0.

An endpoint configured for 2.0 sends 2.0 until the receiver shows it does not
speak it: a 415 answer, or a 2xx answer without any
``X-Prometheus-Remote-Write-*-Written`` header (a 1.0-only receiver such as
Prometheus 2.42 reads a 2.0 body as an empty 1.0 ``WriteRequest`` and answers
204 having written nothing). The endpoint then sends 1.0 and tries 2.0 again
after ``reprobe_interval`` seconds. This module holds that state; the queue
manager acts on it (it resends the refused batch as 1.0).
"""

from __future__ import annotations

import time
from collections.abc import Callable

DEFAULT_REPROBE_INTERVAL = 3600.0
VERSION_NAMES = {1: "1.0", 2: "2.0"}


class ProtocolNegotiation:
    """Which protocol an endpoint sends now, and since when it fell back."""

    def __init__(
        self,
        configured: int,
        *,
        reprobe_interval: float = DEFAULT_REPROBE_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.configured = configured
        self.current = configured
        self.reprobe_interval = reprobe_interval
        self.fallback_since: float | None = None
        self.fallback_reason = ""
        self.fallbacks = 0
        self._clock = clock

    @staticmethod
    def refused(protocol: int, status: int | None, written: object, items: int) -> bool:
        """Whether an answer to a ``protocol`` request says the receiver does not speak 2.0."""
        if protocol != 2 or status is None:
            return False
        return status == 415 or (200 <= status < 300 and items > 0 and written is None)

    def fall_back(self, reason: str) -> bool:
        """Send 1.0 from now on; True when this changed the protocol in use."""
        if self.current == 1:
            return False
        self.current = 1
        self.fallback_since = self._clock()
        self.fallback_reason = reason
        self.fallbacks += 1
        return True

    def reprobe_due(self) -> bool:
        """Switch back to 2.0 when the re-probe interval has passed; True when it did."""
        since = self.fallback_since
        if self.current == self.configured or since is None:
            return False
        if self._clock() - since < self.reprobe_interval:
            return False
        self.current = self.configured
        return True

    def describe(self) -> str:
        """One line for the console: the version in use and why."""
        name = VERSION_NAMES[self.current]
        if self.current == self.configured or self.fallback_since is None:
            return name
        left = max(0.0, self.fallback_since + self.reprobe_interval - self._clock())
        return (
            f"{name} (receiver refused 2.0: {self.fallback_reason}; "
            f"2.0 is tried again in {_minutes(left)})"
        )


def _minutes(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
