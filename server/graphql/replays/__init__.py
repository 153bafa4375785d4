"""Replays: request, cancel and follow CATCH_UP / REBUILD / VERIFY runs (admin role)."""
