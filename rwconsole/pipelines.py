"""Ready-made pipelines: the demo (synthetic source → WAL → embedded receiver)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from rwconsole.config import schema

DEMO_SERIES = 2000
DEMO_INTERVAL = 1.0


def demo_config(
    data_dir: str | Path | None = None, *, metrics_address: str = "127.0.0.1:0"
) -> schema.Config:
    """The demo: synthetic load into a WAL, forwarded to the embedded receiver.

    The engine adds two endpoints (remote write 1.0 and 2.0) pointing at the
    embedded receiver when ``demo.enabled`` is set. Without ``data_dir`` the
    data lives in a new temporary directory.
    """
    path = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="rwconsole-demo-"))
    return schema.Config(
        external_labels={"forwarder": "rwconsole-demo"},
        storage=schema.StorageConfig(path=str(path)),
        http=schema.HTTPServerConfig(listen_address=metrics_address),
        synthetic=schema.SyntheticConfig(
            series=DEMO_SERIES,
            metrics=20,
            interval=DEMO_INTERVAL,
            churn=0.01,
            histograms=True,
            exemplars=True,
        ),
        wal=schema.WALConfig(segment_size=16 * 1024 * 1024, truncate_frequency=600.0),
        demo=schema.DemoConfig(enabled=True),
    )
