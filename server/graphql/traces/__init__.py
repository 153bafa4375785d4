"""Ingest and event/trace reads."""
