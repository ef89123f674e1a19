"""Per-endpoint delivery progress, persisted so a restart resumes without loss.

One small JSON file beside the WAL holds, for each queue name, the WAL
position up to which everything is delivered. It is rewritten atomically
(temp file, fsync, rename) at most once per ``save`` call; the engine calls
``save`` on a timer and at shutdown. A missing or unreadable file means "no
progress known" and is reported, never fatal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path

from rwconsole.remote.chunks import Position

log = logging.getLogger("rwconsole.progress")

FILE_NAME = "remote-progress.json"


class ProgressStore:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.path = Path(directory) / FILE_NAME
        self._positions: dict[str, Position] = {}
        self._dirty = False
        self._load()

    def _load(self) -> None:
        try:
            raw = json.loads(self.path.read_text())
            for name, entry in raw.get("queues", {}).items():
                self._positions[name] = (int(entry["segment"]), int(entry["offset"]))
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            log.error(
                "cannot read delivery progress from %s (%s); starting without it", self.path, err
            )

    def get(self, queue_name: str) -> Position | None:
        return self._positions.get(queue_name)

    def set(self, queue_name: str, position: Position) -> None:
        if self._positions.get(queue_name) != position:
            self._positions[queue_name] = position
            self._dirty = True

    def forget(self, queue_name: str) -> None:
        if self._positions.pop(queue_name, None) is not None:
            self._dirty = True

    def positions(self) -> dict[str, Position]:
        return dict(self._positions)

    def save(self, *, force: bool = False) -> None:
        if not (self._dirty or force):
            return
        # Copy first (atomic under the GIL): the engine may save from a worker thread
        # while its loop keeps updating positions.
        positions = self._positions.copy()
        self._dirty = False
        payload = {
            "updated_unix": time.time(),
            "queues": {
                name: {"segment": seg, "offset": off}
                for name, (seg, off) in sorted(positions.items())
            },
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".progress-", dir=self.path.parent)
        except OSError as err:
            log.error("cannot save delivery progress to %s: %s", self.path, err)
            self._dirty = True
            return
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(payload, fh, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except OSError as err:
            log.error("cannot save delivery progress to %s: %s", self.path, err)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            self._dirty = True
