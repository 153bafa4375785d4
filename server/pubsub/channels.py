"""Channel and queue names, all under DG_NAMESPACE so installs can share one Redis."""

from __future__ import annotations

from dataclasses import dataclass

from server.service.ports import HEALTH_TOPIC, LOG_TOPIC, REPLAY_TOPIC, WORKFLOW_TOPIC

LOG = LOG_TOPIC
HEALTH = HEALTH_TOPIC
REPLAY = REPLAY_TOPIC
WORKFLOW = WORKFLOW_TOPIC

TOPICS = (LOG, HEALTH, REPLAY, WORKFLOW)


@dataclass(frozen=True, slots=True)
class Channels:
    namespace: str

    def topic(self, tenant_id: str, topic: str) -> str:
        return f"{self.namespace}:tenant:{tenant_id}:{topic}"

    @property
    def pattern(self) -> str:
        return f"{self.namespace}:tenant:*"

    def parse(self, channel: str) -> tuple[str, str] | None:
        """(tenant, topic) of a channel name, or None when it is not ours."""
        prefix = f"{self.namespace}:tenant:"
        if not channel.startswith(prefix):
            return None
        tenant, sep, topic = channel[len(prefix) :].rpartition(":")
        return (tenant, topic) if sep and tenant else None

    @property
    def queue(self) -> str:
        return f"{self.namespace}:queue"

    @property
    def replay_queue(self) -> str:
        """Replay runs queue apart from catch-ups: a worker takes only as many as it runs
        at once, and the rest wait in Redis for whichever worker process frees up first."""
        return f"{self.namespace}:replays"

    @staticmethod
    def doorbell(queue: str) -> str:
        """Published to when a job is queued on `queue`: workers wait on it between polls
        (jobs/doorbell.py)."""
        return f"{queue}:doorbell"
