"""The e2e suite's process fixtures, for the fault suite."""

from tests.e2e.conftest import private_redis, server, start_worker

__all__ = ["private_redis", "server", "start_worker"]
