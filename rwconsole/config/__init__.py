"""Configuration: schema mirroring Alloy's prometheus.remote_write, loading, validation, saving."""
