"""Prometheus-compatible write-ahead log."""
