"""Read-only attach to a forwarder rwconsole does not operate (Prometheus, Alloy).

``PeerEngine`` implements the console contract (``rwconsole.snapshot.EngineControl``)
from the peer's ``prometheus_remote_storage_*`` metrics; every command is refused
with the config change to make instead.
"""

from rwconsole.peer.engine import PeerEngine, PeerError, ReadOnlyError

__all__ = ["PeerEngine", "PeerError", "ReadOnlyError"]
