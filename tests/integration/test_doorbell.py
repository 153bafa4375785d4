"""Jobs start when their doorbell rings, not at the worker's next poll (jobs/doorbell.py).

The test settings poll every 30 s, far longer than any test here waits: whatever starts
sooner was woken by its doorbell.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from redis.asyncio import Redis

from jobs.doorbell import Doorbell
from jobs.worker import doorbell_for
from server.pubsub.channels import Channels
from server.settings import Settings
from tests.integration.test_replays import request, settle
from tests.support import GraphQLClient, golden_events

pytestmark = pytest.mark.anyio


@pytest.fixture
async def bell(redis: Redis) -> AsyncIterator[tuple[Doorbell, str, str]]:
    """A doorbell of a queue of its own, listening: (doorbell, queue, its channel)."""
    queue = f"test-queue-{uuid.uuid4().hex[:8]}"
    channel = Channels.doorbell(queue)
    doorbell = Doorbell(redis, {queue: channel})
    doorbell.start()
    try:
        for _ in range(500):  # until its subscription is in place
            if (await redis.pubsub_numsub(channel))[0][1]:
                break
            await asyncio.sleep(0.01)
        await doorbell.wait(queue, 0)  # the ring it gives itself on connecting
        yield doorbell, queue, channel
    finally:
        await doorbell.stop()


async def test_a_published_ring_wakes_the_waiting_loop(
    redis: Redis, bell: tuple[Doorbell, str, str]
) -> None:
    doorbell, queue, channel = bell
    loop = asyncio.get_running_loop()
    began = loop.time()
    waiting = asyncio.create_task(doorbell.wait(queue, 30))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await redis.publish(channel, b"")
    await asyncio.wait_for(waiting, 10)
    assert loop.time() - began < 10


async def test_a_ring_before_the_wait_is_kept_and_a_wait_without_one_ends_at_its_limit(
    bell: tuple[Doorbell, str, str],
) -> None:
    doorbell, queue, _ = bell
    doorbell.ring(queue)
    await asyncio.wait_for(doorbell.wait(queue, 30), 5)  # rung already: returns at once
    loop = asyncio.get_running_loop()
    began = loop.time()
    await doorbell.wait(queue, 0.2)  # the ring was used up: only the limit ends this one
    assert loop.time() - began >= 0.19


async def test_a_worker_starts_a_replay_at_once_though_it_polls_every_30_s(
    settings: Settings, gql: GraphQLClient, worker: object
) -> None:
    assert settings.worker_poll_delay >= 30
    events = golden_events("dealdesk")
    await gql.append_ok(events)
    requested = await request(gql, "ALL", "REBUILD")
    done = await settle(gql, requested["replay"]["replayId"])
    assert done["status"] == "COMPLETED"
    state = await gql.data(
        "query($id: String!) { replay(replayId: $id) { requestedAt startedAt } }",
        {"id": requested["replay"]["replayId"]},
    )
    times = state["replay"]
    waited = datetime.fromisoformat(times["startedAt"]) - datetime.fromisoformat(
        times["requestedAt"]
    )
    assert waited.total_seconds() < 10


def test_the_worker_listens_to_the_bells_of_both_of_its_queues(settings: Settings) -> None:
    channels = Channels(settings.namespace)
    doorbell = doorbell_for(settings, Redis())
    for queue in (channels.queue, channels.replay_queue):
        doorbell.ring(queue)  # a KeyError if it did not know the queue
