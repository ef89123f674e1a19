"""Per-endpoint delivery progress, persisted so a restart resumes without loss.

One small JSON file beside the WAL holds, for each queue name, the WAL
position up to which everything is delivered, and the (redacted) URL and
protobuf message it was delivered to, so an entry saved under another name
(an endpoint that got a ``name``, or a name from an earlier naming scheme)
can be adopted. When a WAL truncation (the size budget, ``max_keepalive_time``)
cut segments a queue had read from but not delivered yet, the entry also holds
how many of those samples, by drop reason, are still undelivered: they are no
longer in the WAL, so a restart cannot send them and counts them as dropped
instead. After a stop that left items delivered beyond the position (a batch
can end inside a record, and shards finish independently) the entry also holds
them (``rwconsole.remote.ahead``) until the position passes them, so the next
start skips them. The file is replaced atomically (temp file, rename); ``save``
with ``durable=True`` also fsyncs it. A missing or unreadable file means "no
progress known" and is reported, never fatal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Collection
from pathlib import Path

from rwconsole.remote.ahead import DeliveredAhead
from rwconsole.remote.chunks import Position

log = logging.getLogger("rwconsole.progress")

FILE_NAME = "remote-progress.json"


class ProgressStore:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.path = Path(directory) / FILE_NAME
        self._positions: dict[str, Position] = {}
        self._targets: dict[str, tuple[str, str]] = {}
        self._cut: dict[str, dict[str, int]] = {}
        self._ahead: dict[str, tuple[DeliveredAhead, dict[str, object]]] = {}
        """Queue name -> items delivered beyond its position, and their saved form (made
        once: the set does not change while it is kept)."""
        self._dirty = False
        self._unsynced = False
        # Saves may come from the loop and from a worker thread; the lock keeps the
        # newest positions from being replaced by an older write finishing late.
        self._write_lock = threading.Lock()
        self._load()

    def _load(self) -> None:
        try:
            raw = json.loads(self.path.read_text())
            for name, entry in raw.get("queues", {}).items():
                self._positions[name] = (int(entry["segment"]), int(entry["offset"]))
                if "url" in entry:
                    self._targets[name] = (str(entry["url"]), str(entry.get("protobuf_message")))
                cut = entry.get("cut_undelivered")
                if cut:
                    self._cut[name] = {str(reason): int(n) for reason, n in cut.items()}
                if "delivered_ahead" in entry:
                    self._load_ahead(name, entry["delivered_ahead"])
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            log.error(
                "cannot read delivery progress from %s (%s); starting without it", self.path, err
            )

    def _load_ahead(self, name: str, data: object) -> None:
        try:
            ahead = DeliveredAhead.from_json(data)
        except ValueError as err:
            log.error(
                "%s: queues.%s.delivered_ahead: %s; the items it records are sent again",
                self.path,
                name,
                err,
            )
            return
        self._ahead[name] = (ahead, ahead.to_json())

    def get(self, queue_name: str) -> Position | None:
        return self._positions.get(queue_name)

    def set(self, queue_name: str, position: Position) -> None:
        if self._positions.get(queue_name) != position:
            self._positions[queue_name] = position
            self._dirty = True
            kept = self._ahead.get(queue_name)
            if kept is not None and position >= kept[0].until:
                del self._ahead[queue_name]

    def delivered_ahead(self, queue_name: str) -> DeliveredAhead | None:
        """Items delivered beyond the saved position before the last stop (not to be
        changed: a queue counts down its own copy)."""
        kept = self._ahead.get(queue_name)
        return None if kept is None else kept[0]

    def set_delivered_ahead(self, queue_name: str, ahead: DeliveredAhead | None) -> None:
        """Keep (None: forget) the items a stopped queue delivered beyond its position,
        until the position passes ``ahead.until``; set the position first."""
        position = self._positions.get(queue_name)
        if ahead is not None and (position is None or position >= ahead.until):
            ahead = None
        if ahead is None:
            if self._ahead.pop(queue_name, None) is not None:
                self._dirty = True
        else:
            self._ahead[queue_name] = (ahead, ahead.to_json())
            self._dirty = True

    def cut_undelivered(self, queue_name: str) -> dict[str, int]:
        """Samples (by drop reason) the queue took from since-truncated segments and has
        not delivered: what a restart from the saved position would lose."""
        return dict(self._cut.get(queue_name, {}))

    def set_cut_undelivered(self, queue_name: str, counts: dict[str, int]) -> None:
        counts = {reason: n for reason, n in counts.items() if n}
        if self._cut.get(queue_name, {}) != counts:
            if counts:
                self._cut[queue_name] = counts
            else:
                self._cut.pop(queue_name, None)
            self._dirty = True

    def forget(self, queue_name: str) -> None:
        if self._positions.pop(queue_name, None) is not None:
            self._targets.pop(queue_name, None)
            self._cut.pop(queue_name, None)
            self._ahead.pop(queue_name, None)
            self._dirty = True

    def positions(self) -> dict[str, Position]:
        return dict(self._positions)

    def resolve(
        self, name: str, *, url: str, message: str, legacy_name: str, taken: Collection[str]
    ) -> Position | None:
        """The saved position of endpoint ``name``, adopting an entry saved under another name.

        An entry not claimed by a configured endpoint (``taken``) is adopted when it
        recorded the same ``url`` and ``message``, or, for entries from before
        targets were recorded, when its name is the endpoint's ``legacy_name``.
        """
        target = (url, message)
        if self._targets.get(name) != target:
            self._targets[name] = target
            self._dirty = True
        if name in self._positions:
            return self._positions[name]
        unclaimed = [n for n in self._positions if n not in taken]
        same_target = [n for n in unclaimed if self._targets.get(n) == target]
        if same_target:
            old = same_target[0]
        elif legacy_name in unclaimed and legacy_name not in self._targets:
            old = legacy_name
        else:
            return None
        position = self._positions.pop(old)
        self._targets.pop(old, None)
        self._positions[name] = position
        if old in self._cut:
            self._cut[name] = self._cut.pop(old)
        if old in self._ahead:
            self._ahead[name] = self._ahead.pop(old)
        self._dirty = True
        log.info(
            "endpoint %s: adopted the delivery progress saved as %r (same %s)",
            name,
            old,
            "url" if old != legacy_name else "settings",
            extra={"endpoint": name},
        )
        return position

    def save(self, *, force: bool = False, durable: bool = True) -> None:
        """Write the file if anything changed (or ``force``); ``durable`` adds an fsync.

        A durable save also writes when the last write was not fsynced.
        """
        if not (self._dirty or force or (durable and self._unsynced)):
            return
        with self._write_lock:
            # Clear first, copy second (atomic under the GIL): a change made meanwhile by
            # the loop is either in this copy or marks the store dirty again.
            self._dirty = False
            positions = self._positions.copy()
            targets = self._targets.copy()
            cut = {name: dict(counts) for name, counts in self._cut.items()}
            ahead = {name: saved for name, (_, saved) in self._ahead.copy().items()}
            if self._write(positions, targets, cut, ahead, durable):
                self._unsynced = not durable
            else:
                self._dirty = True

    def _write(
        self,
        positions: dict[str, Position],
        targets: dict[str, tuple[str, str]],
        cut: dict[str, dict[str, int]],
        ahead: dict[str, dict[str, object]],
        durable: bool,
    ) -> bool:
        queues = {}
        for name, (seg, off) in sorted(positions.items()):
            entry: dict[str, object] = {"segment": seg, "offset": off}
            if name in targets:
                entry["url"], entry["protobuf_message"] = targets[name]
            if cut.get(name):
                entry["cut_undelivered"] = cut[name]
            if name in ahead:
                entry["delivered_ahead"] = ahead[name]
            queues[name] = entry
        payload = {"updated_unix": time.time(), "queues": queues}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".progress-", dir=self.path.parent)
        except OSError as err:
            log.error("cannot save delivery progress to %s: %s", self.path, err)
            return False
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(payload, fh, indent=1)
                if durable:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except OSError as err:
            log.error("cannot save delivery progress to %s: %s", self.path, err)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            return False
        return True
