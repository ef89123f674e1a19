"""rwconsole: a Prometheus remote-write forwarder with a live operations console."""

__version__ = "0.1.0"
