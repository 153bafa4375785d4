"""The e2e suite's process fixtures, for the fault suite."""

from tests.e2e.conftest import server, start_worker

__all__ = ["server", "start_worker"]
