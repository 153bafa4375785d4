"""The arq worker: catch-up and replay jobs, and a sweep that needs no job at all.

Appends enqueue `catch_up:<tenant>` (one pending job per tenant). Independently, every
worker sweeps once per DG_SWEEP_INTERVAL: it fires due SLA timers (escalations and deadline
warnings, each exactly once), catches up any tenant whose projections lag its log (so
nothing stays stale after a restart, a crash, or a lost notice) and resumes replay runs
that no live worker holds. Advisory locks make all of it safe to run on
several workers at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from typing import Any, Final

import uvloop
from arq import func
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Worker
from opentelemetry.trace import SpanKind
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from jobs.doorbell import Doorbell
from jobs.runtime import WorkerRuntime
from server.observability import tracing
from server.pubsub.channels import Channels
from server.pubsub.connection import redis_client
from server.pubsub.queue import (
    CATCH_UP,
    CATCH_UP_CASES,
    HEALTH_CHECK_SUFFIX,
    RUN_REPLAY,
    RUN_SIMULATION,
)
from server.service import policy_simulation, precedent_cases, projection, replay, workflows
from server.settings import Settings
from server.store.replays import REPLAYS_AT_ONCE

_log = logging.getLogger("decisiongraph.worker")

ORPHAN_AFTER_SECONDS: Final = 3.0
RESTART_MIN: Final = 0.5
RESTART_MAX: Final = 5.0
SWEEP_BUDGET_SECONDS: Final = 2.0


async def catch_up(ctx: dict[str, Any], tenant_id: str, traceparent: str | None = None) -> int:
    runtime: WorkerRuntime = ctx["runtime"]
    with tracing.tracer().start_as_current_span(
        "dg.catch_up",
        context=tracing.context_of(traceparent),
        kind=SpanKind.CONSUMER,
        attributes={"dg.tenant": tenant_id},
    ) as span:
        result = await projection.catch_up(runtime.projections, runtime.announcer, tenant_id)
        span.set_attribute("dg.events_applied", result.applied)
    if result.failure is not None:
        _log.warning(
            "projection of %s stopped at log_seq %s: %s",
            tenant_id,
            result.failure.event.log_seq,
            result.failure.error,
        )
    return result.applied


async def run_replay(ctx: dict[str, Any], replay_id: str) -> str | None:
    runtime: WorkerRuntime = ctx["runtime"]
    record = await replay.run_replay(
        runtime.replays, runtime.projections, runtime.log, runtime.announcer, replay_id
    )
    return record.status if record else None


async def catch_up_cases(ctx: dict[str, Any], tenant_id: str) -> int:
    runtime: WorkerRuntime = ctx["runtime"]
    return await precedent_cases.catch_up(runtime.cases, tenant_id)


async def run_simulation(ctx: dict[str, Any], simulation_id: str) -> str:
    runtime: WorkerRuntime = ctx["runtime"]
    record = await policy_simulation.run(
        runtime.simulations, runtime.cases, runtime.announcer, simulation_id
    )
    return record.status


async def sweep_once(runtime: WorkerRuntime) -> None:
    try:
        await workflows.run_timers(runtime.workflow_deps)
    except Exception:
        _log.exception("SLA timers failed; retrying at the next sweep")
    for tenant_id, _ in await runtime.projections.lagging_tenants():
        await projection.catch_up(
            runtime.projections, runtime.announcer, tenant_id, budget_seconds=SWEEP_BUDGET_SECONDS
        )
    # Cases are a convenience for reads, not a promise like the spec projections: one
    # budget for all tenants per sweep, so that a worker starting on a database of many
    # stale tenants does not crowd out the catch-up jobs of live ones.
    deadline = time.monotonic() + SWEEP_BUDGET_SECONDS
    for tenant_id in await runtime.cases.lagging_tenants():
        left = deadline - time.monotonic()
        if left <= 0:
            break
        await precedent_cases.catch_up(runtime.cases, tenant_id, left)
    for orphan in await runtime.replays.claim_orphans(ORPHAN_AFTER_SECONDS):
        _log.info("resuming replay %s (attempt %s)", orphan.replay_id, orphan.attempts)
        await runtime.jobs.replay(orphan.replay_id, orphan.attempts)


async def _sweep_forever(runtime: WorkerRuntime) -> None:
    while True:
        try:
            await sweep_once(runtime)
        except Exception:
            _log.exception("sweep failed; retrying at the next interval")
        await asyncio.sleep(runtime.settings.sweep_interval)


_ARQ_FINISHERS: Final = ("Worker.finish_job", "Worker.finish_failed_job")
# arq's claim of a queued job, in one round trip instead of a WATCH transaction of five
# (WATCH, EXISTS, ZSCORE, then MULTI/PSETEX/EXEC or UNWATCH), and atomic the same way:
# the job's score if this worker now holds it, nil if another one does, it has left the
# queue or it is deferred. KEYS: the job's in-progress key, the queue; ARGV: the job id,
# now (ms), how long the claim lasts (ms).
_CLAIM: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then return false end
redis.call('PSETEX', KEYS[1], ARGV[3], '1')
return score
"""


def _coroutine_name(task: asyncio.Task[Any]) -> str:
    return str(getattr(task.get_coro(), "__qualname__", ""))


class DecisionGraphWorker(Worker):
    """arq's Worker with a shutdown that never interrupts its own Redis bookkeeping.

    arq stops by cancelling its poll loop wherever it is, and a cancellation that lands
    while a WATCH pipeline is unwinding strands that pipeline's connection (seen as
    "Unclosed client session" warnings). Here the poll loop is asked to stop between two
    iterations instead, and cancelled only if it does not within a few seconds. arq 0.28
    also gathers the cancelled job tasks without `return_exceptions`, which raised
    CancelledError out of `close()`. Interrupted jobs are safe to drop: catch-up is
    idempotent and the sweep resumes orphaned replays. The pool belongs to the process
    (`serve`), which outlives any one job loop.
    """

    _stopping = False
    doorbell: Doorbell | None = None
    _claim: AsyncScript | None = None

    async def main(self) -> None:
        """arq's loop, but waiting for the queue's doorbell between polls (a rung bell, or
        DG_WORKER_POLL_DELAY at most) instead of polling every poll_delay."""
        if self.burst or self.doorbell is None:
            return await super().main()
        self.ctx["redis"] = self.pool
        while True:
            await self._poll_iteration()
            await self.doorbell.wait(self.queue_name, self.poll_delay_s)

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """arq's, with the claim as one script (_CLAIM), and without asking Redis about the
        jobs this process is running: they stay in the queue until they end, and every
        poll listed them again. A queue of a few runs cost ~20 Redis round trips a run."""
        if self._claim is None:
            self._claim = self.pool.register_script(_CLAIM)
        claim, hold_ms = self._claim, int(self.in_progress_timeout_s * 1000)
        for job_id_b in job_ids:
            job_id = job_id_b.decode()
            if job_id in self.tasks:
                continue
            await self.sem.acquire()
            if self.job_counter >= self.max_jobs:
                self.sem.release()
                return
            self.job_counter += 1
            keys = [in_progress_key_prefix + job_id, self.queue_name]
            score = await claim(keys=keys, args=[job_id, timestamp_ms(), hold_ms])
            if score is None:
                self.job_counter -= 1
                self.sem.release()
                continue
            task = self.loop.create_task(self.run_job(job_id, int(float(score))))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task

    def _release_sem_dec_counter_on_complete(self) -> None:
        """A job ended: its slot is free, so look at the queue now, not at the next poll."""
        super()._release_sem_dec_counter_on_complete()
        if self.doorbell is not None:
            self.doorbell.ring(self.queue_name)

    async def _poll_iteration(self) -> None:
        if self._stopping:
            raise asyncio.CancelledError  # at an iteration boundary: nothing half done
        await super()._poll_iteration()

    def handle_sig(self, signum: signal.Signals) -> None:
        """arq's, minus cancelling the poll loop (close() stops it between iterations)."""
        self._stopping = True
        if self.doorbell is not None:
            self.doorbell.ring(self.queue_name)  # stop at once, not after a poll interval
        main, self.main_task = self.main_task, None
        try:
            super().handle_sig(signum)
        finally:
            self.main_task = main

    async def close(self) -> None:
        if not self._handle_signals:
            self.handle_sig(signal.SIGUSR1)
        if not self._pool:
            return
        main = self.main_task
        if main is not None and main is not asyncio.current_task():
            await asyncio.wait([main], timeout=5.0)
            # Stuck in a Redis call (an outage): cancel, again if a call swallows it.
            for _ in range(20):
                if main.done():
                    break
                main.cancel()
                await asyncio.wait([main], timeout=0.5)
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        # arq shields each job's bookkeeping (`finish_job`, a Redis pipeline) from the
        # cancellation, so a cancelled job task returns while that still runs. Closing the
        # pool under it would strand the pipeline's connection: let it finish first.
        finishing = [
            task
            for task in asyncio.all_tasks()
            if not task.done() and _coroutine_name(task).startswith(_ARQ_FINISHERS)
        ]
        if finishing:
            await asyncio.wait(finishing, timeout=5.0)
        with contextlib.suppress(RedisError, OSError):
            await self.pool.delete(self.health_check_key)
        self._pool = None


def build_workers(
    settings: Settings, runtime: WorkerRuntime, doorbell: Doorbell | None = None
) -> list[DecisionGraphWorker]:
    """Two job loops on one Redis pool: catch-ups (many at once, each short) and replay
    runs, of which a process takes no more than it runs at once (REPLAYS_AT_ONCE), so
    that with several worker processes a queued run goes to one that is free."""
    channels = Channels(settings.namespace)
    common: dict[str, Any] = {
        "redis_pool": runtime.redis,
        "poll_delay": settings.worker_poll_delay,
        "keep_result": 0,
        "handle_signals": False,
        "ctx": {"settings": settings, "runtime": runtime},
    }
    workers = [
        DecisionGraphWorker(
            functions=[
                func(catch_up, name=CATCH_UP, timeout=120, keep_result=0, max_tries=3),
                func(catch_up_cases, name=CATCH_UP_CASES, timeout=120, keep_result=0, max_tries=3),
            ],
            queue_name=channels.queue,
            health_check_key=channels.queue + HEALTH_CHECK_SUFFIX,
            health_check_interval=5,
            max_jobs=16,
            **common,
        ),
        DecisionGraphWorker(
            functions=[
                func(run_replay, name=RUN_REPLAY, timeout=6 * 3600, keep_result=0, max_tries=3),
                func(run_simulation, name=RUN_SIMULATION, timeout=3600, keep_result=0, max_tries=3),
            ],
            queue_name=channels.replay_queue,
            health_check_key=channels.replay_queue + HEALTH_CHECK_SUFFIX,
            health_check_interval=5,
            max_jobs=REPLAYS_AT_ONCE,
            **common,
        ),
    ]
    for worker in workers:
        worker.doorbell = doorbell
    return workers


def doorbell_for(settings: Settings, redis: ArqRedis) -> Doorbell:
    channels = Channels(settings.namespace)
    queues = (channels.queue, channels.replay_queue)
    return Doorbell(redis, {queue: channels.doorbell(queue) for queue in queues})


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """A worker process until `stop` is set.

    The sweep needs only PostgreSQL and runs throughout, so projections keep catching up
    while Redis is down. arq's job loop needs Redis; when it fails (an outage, a restart)
    it is started again with backoff instead of taking the process down.
    """
    redis = redis_client(settings.require_redis_url)
    runtime = await WorkerRuntime.open(settings, redis)
    sweeper = asyncio.create_task(_sweep_forever(runtime), name="dg-sweep")
    doorbell = doorbell_for(settings, redis)
    doorbell.start()
    pause = RESTART_MIN
    try:
        while not stop.is_set():
            workers = build_workers(settings, runtime, doorbell)
            began = time.monotonic()
            loops = [
                asyncio.create_task(w.async_run(), name=f"dg-jobs-{w.queue_name}") for w in workers
            ]
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({*loops, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            failure = next((j.exception() for j in loops if j.done() and not j.cancelled()), None)
            # One loop failing (Redis gone) stops both: they restart together.
            await asyncio.gather(*(w.close() for w in workers))
            if stop.is_set():
                break
            if time.monotonic() - began > RESTART_MAX * 2:
                pause = RESTART_MIN  # it ran fine for a while: this is a new incident
            _log.warning("job loop stopped (%s); restarting in %.1f s", failure, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, RESTART_MAX)
    finally:
        await doorbell.stop()
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        await runtime.close()
        await redis.aclose()


def run(settings: Settings) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await serve(settings, stop)

    # uvloop, as uvicorn gives the server: a REBUILD is thousands of socket wake-ups (its
    # log windows arrive 8 kB at a time, its COPYs go out in parts), and uvloop's C
    # transports take ~6 ms less of a worker's CPU a 10,000-event run than asyncio's
    # (~11% of the process; in-process A/B, docs/benchmarks.md).
    uvloop.run(main())
