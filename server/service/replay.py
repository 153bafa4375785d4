"""Replay use cases: request (admitted and audited), cancel, and the resumable run.

A run records its phase, so a worker that resumes it after a crash neither resets a
projection twice nor loses progress: projection batches commit rows and cursors
together, so continuing from the cursor gives the same state as never stopping.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from server.core.digest import FULL_PROJECTION, full_digest
from server.core.errors import DecisionGraphError, conflict, not_found
from server.core.projection_batch import PROJECTIONS
from server.core.replay import (
    CANCELLED,
    COMPLETED,
    FAILED,
    PROJECTING,
    REBUILD,
    START,
    TERMINAL,
    VERIFY,
    WORKFLOW_PHASE,
    ReplayRecord,
    check_request,
    verify_scope,
)
from server.core.workflow import WORKFLOWS
from server.service.ports import Audit, EventLog, Jobs, Projections, Publisher, Replays

_log = logging.getLogger(__name__)
BUSY_PAUSE: Final = 0.05


async def request_replay(
    replays: Replays,
    audit: Audit,
    jobs: Jobs,
    tenant_id: str,
    projection: str,
    mode: str,
    reason: str,
    key_id: str,
) -> ReplayRecord:
    detail = {"projection": projection, "mode": mode}
    try:
        reason = check_request(projection, mode, reason)
        record = await replays.create(tenant_id, projection, mode, reason, key_id)
    except DecisionGraphError as error:
        await audit.record(
            tenant_id=tenant_id,
            key_id=key_id,
            action="replay.request",
            outcome="rejected",
            reason=reason,
            detail=detail | {"code": error.code},
        )
        raise
    await audit.record(
        tenant_id=tenant_id,
        key_id=key_id,
        action="replay.request",
        outcome="accepted",
        target=record.replay_id,
        reason=reason,
        detail=detail,
    )
    try:
        await jobs.replay(record.replay_id)
    except Exception:  # Redis down: the workers' sweep picks up queued runs
        _log.warning("could not enqueue %s; the sweep will start it", record.replay_id)
    return record


async def cancel_replay(
    replays: Replays, audit: Audit, tenant_id: str, replay_id: str, key_id: str
) -> ReplayRecord:
    current = await replays.get(replay_id, tenant_id)
    if current is None:
        raise not_found(f"Replay not found: {replay_id}")
    if current.status in TERMINAL:
        raise conflict(f"Replay {replay_id} is already {current.status}")
    record = await replays.request_cancel(replay_id, tenant_id)
    assert record is not None
    await audit.record(
        tenant_id=tenant_id,
        key_id=key_id,
        action="replay.cancel",
        outcome="accepted",
        target=replay_id,
    )
    return record


async def run_replay(
    replays: Replays,
    projections: Projections,
    log: EventLog,
    publisher: Publisher,
    replay_id: str,
) -> ReplayRecord | None:
    """Execute (or resume) a run; None when another worker is already executing it."""
    async with replays.run_lock(replay_id) as held:
        if not held:
            return None
        # RUNNING at once unless it has ended or been cancelled (then it is left as it is).
        record = await replays.start(replay_id)
        if record is None or record.status in TERMINAL:
            return record
        if record.cancel_requested:
            return await _end(replays, publisher, record, CANCELLED)
        await publisher.replay_changed(record.tenant_id, record.last_log_seq)
        try:
            if record.mode == VERIFY:
                return await _verify(replays, projections, log, publisher, record)
            return await _project(replays, projections, log, publisher, record)
        except DecisionGraphError as error:
            return await _end(
                replays,
                publisher,
                record,
                FAILED,
                error_code=error.code,
                error_message=error.message,
            )


async def _end(
    replays: Replays, publisher: Publisher, record: ReplayRecord, status: str, **fields: object
) -> ReplayRecord:
    ended = await replays.finish(record.replay_id, status, **fields)
    await publisher.replay_changed(ended.tenant_id, ended.last_log_seq)
    return ended


async def _project(
    replays: Replays,
    projections: Projections,
    log: EventLog,
    publisher: Publisher,
    record: ReplayRecord,
) -> ReplayRecord:
    """CATCH_UP to the log's end at the start; REBUILD via _rebuild."""
    tenant, names = record.tenant_id, record.projections
    if record.mode == REBUILD:
        return await _rebuild(replays, projections, publisher, record)
    if record.phase == START:
        cursors = await projections.cursors(tenant)
        tail = (await log.stats(tenant)).last_log_seq
        record = await replays.update(
            record.replay_id,
            phase=PROJECTING,
            target_json={"start": min(cursors[n] for n in names), "end": tail},
        )
    record = await _catch_up(replays, projections, publisher, record, names)
    return await _end(
        replays, publisher, record, CANCELLED if record.cancel_requested else COMPLETED
    )


async def _catch_up(
    replays: Replays,
    projections: Projections,
    publisher: Publisher,
    record: ReplayRecord,
    names: tuple[str, ...],
) -> ReplayRecord:
    """Incremental batches of `names` up to the run's target end (or a cancel)."""
    tenant = record.tenant_id
    start, end = record.target.get("start", 0), record.target.get("end", 0)
    while True:
        report = await projections.catch_up(tenant, projections=names)
        if report.failure is not None:
            raise report.failure.error
        cursors = await projections.cursors(tenant)
        reached = min(cursors[n] for n in names)
        record = await replays.update(
            record.replay_id, processed_events=max(reached - start, 0), last_log_seq=reached
        )
        await publisher.replay_changed(tenant, reached)
        if report.applied:
            await publisher.health_changed(tenant, reached)
        if record.cancel_requested or (reached >= end and not report.more):
            return record
        if not report.applied:  # another worker holds the batch; let it finish
            await asyncio.sleep(BUSY_PAUSE)


# A bulk run reports its position (and learns of a cancel) at most this often: the native
# pass gets through a 5,000-event chunk in ~10 milliseconds, and a row update and a
# notice per chunk were a few percent of a REBUILD's CPU. Its end is reported anyway.
PROGRESS_INTERVAL: Final = 0.1


def _pass(native: bool) -> str:
    """Which projector did a bulk run (ADR 0017), for the operators' log."""
    return "native" if native else "Python"


def _progress(
    replays: Replays, publisher: Publisher, record: ReplayRecord, scale: int = 1
) -> Callable[[int], Awaitable[bool]]:
    """Reports a bulk run's position; False once a cancel has been requested."""
    reported = -PROGRESS_INTERVAL

    async def report(position: int) -> bool:
        nonlocal reported
        now = asyncio.get_running_loop().time()
        if now - reported < PROGRESS_INTERVAL:
            return True
        reported = now
        updated = await replays.update(
            record.replay_id, processed_events=position * scale, last_log_seq=position
        )
        await publisher.replay_changed(record.tenant_id, position)
        return not updated.cancel_requested

    return report


async def _rebuild(
    replays: Replays, projections: Projections, publisher: Publisher, record: ReplayRecord
) -> ReplayRecord:
    """The workflow projection cleared and replayed in one transaction (it is small),
    then the spec projections in bulk, swapped in whole (store/bulk_rebuild.py). A
    resumed run starts the part it was in again: until that part commits, the live
    projections it rebuilds are untouched. (Runs queued by an older release may be in
    WORKFLOW_PHASE, the workflow part's own phase then: it is redone the same way.)"""
    tenant, names = record.tenant_id, record.projections
    spec = tuple(n for n in names if n in PROJECTIONS)
    if WORKFLOWS in names and record.phase in (START, WORKFLOW_PHASE):
        flows = await projections.rebuild_workflows(tenant)
        if flows.failure is not None:
            raise flows.failure.error
        # The spec part's phase with the workflow part's position: a run resumed after
        # this commit starts with the spec part.
        then = {"phase": PROJECTING} if spec else {}
        record = await _reached(replays, publisher, record, flows.cursors[WORKFLOWS], **then)
        if record.cancel_requested:
            return await _end(replays, publisher, record, CANCELLED)
    if spec:
        if record.phase != PROJECTING:
            record = await replays.update(record.replay_id, phase=PROJECTING)
        outcome = await projections.rebuild(tenant, spec, _progress(replays, publisher, record))
        _log.info("replay %s: %s pass", record.replay_id, _pass(outcome.native))
        if outcome.cancelled:
            return await _end(replays, publisher, record, CANCELLED)
        cursors = await projections.cursors(tenant)
        position = min(cursors[n] for n in names)
        if outcome.failure is not None:
            await _reached(replays, publisher, record, position)
            raise outcome.failure.error
        await publisher.health_changed(tenant, position)  # as _reached, with the end's write
        return await _end(
            replays, publisher, record, COMPLETED, processed_events=position, last_log_seq=position
        )
    return await _end(replays, publisher, record, COMPLETED)


async def _reached(
    replays: Replays, publisher: Publisher, record: ReplayRecord, position: int, **fields: object
) -> ReplayRecord:
    """A REBUILD part committed up to `position`: the run says so (with `fields`), and
    readers hear of it."""
    record = await replays.update(
        record.replay_id, processed_events=position, last_log_seq=position, **fields
    )
    await publisher.health_changed(record.tenant_id, position)
    return record


def _with_full(digests: dict[str, str], names: tuple[str, ...]) -> dict[str, str]:
    if set(PROJECTIONS) <= set(names):
        return digests | {
            FULL_PROJECTION: full_digest(
                digests["context_graph"], digests["trace_summary"], digests["precedent_index"]
            )
        }
    return digests


async def _verify(
    replays: Replays,
    projections: Projections,
    log: EventLog,
    publisher: Publisher,
    record: ReplayRecord,
) -> ReplayRecord:
    """Rebuild in scratch state up to the live cursors, then compare digests: the spec
    projections in bulk shadow tables, the workflow projection in a scratch scope."""
    tenant, names, scope = record.tenant_id, record.projections, verify_scope(record.replay_id)
    if record.phase == START:
        # Fresh, never cached: VERIFY exists to prove the live rows as they are now.
        positions, live = await projections.digests(tenant, use_cache=False, only=names)
        target = {n: positions[n] for n in names}
        expected = _with_full({n: live[n] for n in names}, names)
        await projections.drop_scope(scope)
        record = await replays.update(
            record.replay_id, phase=PROJECTING, target_json=target, expected_json=expected
        )
    total = sum(record.target.values())
    spec = tuple(n for n in names if n in PROJECTIONS)
    rebuilt: dict[str, str] = {}
    if spec:
        outcome = await projections.scratch_digests(
            tenant,
            spec,
            {n: record.target[n] for n in spec},
            _progress(replays, publisher, record, scale=len(spec)),
        )
        _log.info("replay %s: %s pass", record.replay_id, _pass(outcome.native))
        if outcome.failure is not None:
            raise outcome.failure.error
        if outcome.cancelled:
            return await _end(replays, publisher, record, CANCELLED)
        rebuilt = dict(outcome.digests)
    if WORKFLOWS in names:
        until = record.target[WORKFLOWS]
        while True:
            report = await projections.catch_up(tenant, scope, [WORKFLOWS], until=until)
            if report.failure is not None:
                await projections.drop_scope(scope)
                raise report.failure.error
            reached = (await projections.cursors(scope))[WORKFLOWS]
            record = await replays.update(record.replay_id, last_log_seq=reached)
            if record.cancel_requested:
                await projections.drop_scope(scope)
                return await _end(replays, publisher, record, CANCELLED)
            if reached >= until:
                break
            if not report.applied:
                await asyncio.sleep(BUSY_PAUSE)
        _, scratch = await projections.digests(scope, use_cache=False, only=(WORKFLOWS,))
        rebuilt[WORKFLOWS] = scratch[WORKFLOWS]
        await projections.drop_scope(scope)
    actual = _with_full({n: rebuilt[n] for n in names}, names)
    expected = record.expected or {}
    return await _end(
        replays,
        publisher,
        record,
        COMPLETED,
        actual_json=actual,
        digests_match=actual == expected,
        processed_events=total,
    )
