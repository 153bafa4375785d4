"""Metrics, traces and logs for operators (docs/observability.md)."""
