"""A queued job is claimed by one worker, once, in one script (jobs/worker.py, _CLAIM).

Real Redis, arq's own enqueue and job bookkeeping; only the claim is ours.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from arq import func
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix

from jobs.worker import DecisionGraphWorker

pytestmark = pytest.mark.anyio


def _worker(redis: ArqRedis, queue: str, ran: list[str], max_jobs: int = 2) -> DecisionGraphWorker:
    async def job(ctx: dict[str, Any], label: str) -> None:
        ran.append(label)
        await asyncio.sleep(0.05)  # still running while the other worker looks at the queue

    return DecisionGraphWorker(
        functions=[func(job, name="job", keep_result=0, max_tries=1)],
        redis_pool=redis,
        queue_name=queue,
        health_check_key=f"{queue}:health-check",
        handle_signals=False,
        keep_result=0,
        max_jobs=max_jobs,
    )


async def _queued(redis: ArqRedis, queue: str) -> list[bytes]:
    return list(await redis.zrange(queue, 0, -1))


async def test_two_workers_racing_for_the_queue_run_each_job_once(redis: ArqRedis) -> None:
    queue = f"test-claims-{uuid.uuid4().hex[:8]}"
    ran: list[str] = []
    first, second = _worker(redis, queue, ran), _worker(redis, queue, ran)
    for label in ("a", "b", "c"):
        assert await redis.enqueue_job("job", label, _queue_name=queue) is not None
    ids = await _queued(redis, queue)
    # Both see all three and try them in the same order at the same time.
    await asyncio.gather(first.start_jobs(ids), second.start_jobs(ids))
    # Each worker holds at most max_jobs (2), the two together all three, none twice.
    assert len(first.tasks) + len(second.tasks) == 3
    assert not set(first.tasks) & set(second.tasks)
    await asyncio.gather(*first.tasks.values(), *second.tasks.values())
    assert sorted(ran) == ["a", "b", "c"]
    assert await _queued(redis, queue) == []  # arq's own bookkeeping ended each one


async def test_a_claimed_job_is_not_claimed_again_while_it_runs(redis: ArqRedis) -> None:
    queue = f"test-claims-{uuid.uuid4().hex[:8]}"
    ran: list[str] = []
    worker, other = _worker(redis, queue, ran), _worker(redis, queue, ran)
    await redis.enqueue_job("job", "once", _queue_name=queue)
    ids = await _queued(redis, queue)
    await worker.start_jobs(ids)
    assert len(worker.tasks) == 1
    job_id = next(iter(worker.tasks))
    assert await redis.exists(in_progress_key_prefix + job_id) == 1
    # Still queued while it runs: the same worker skips it, the other is refused by Redis.
    assert await _queued(redis, queue) == ids
    await worker.start_jobs(ids)
    await other.start_jobs(ids)
    assert list(worker.tasks) == [job_id] and other.tasks == {}
    await asyncio.gather(*worker.tasks.values())
    assert ran == ["once"]


async def test_a_deferred_job_waits_for_its_time(redis: ArqRedis) -> None:
    queue = f"test-claims-{uuid.uuid4().hex[:8]}"
    ran: list[str] = []
    worker = _worker(redis, queue, ran)
    await redis.enqueue_job("job", "later", _queue_name=queue, _defer_by=60)
    ids = await _queued(redis, queue)
    await worker.start_jobs(ids)  # listed (as a stale poll might), but not yet due
    assert worker.tasks == {} and ran == []
    assert worker.job_counter == 0  # the slot it tried is free again
    await redis.delete(queue)
