"""Runnable examples of the SDK against a running platform."""
