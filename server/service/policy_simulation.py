"""Policy simulation runs: validated, audited, run inline when small, by a worker if not.

A run re-judges the tenant's finished cases (the case projection) under a candidate rule
set (server/core/policy_simulation.py). Up to INLINE_CASES cases the request itself runs
it and answers COMPLETED; a larger tenant's run is queued as an arq job on the replay
queue, reports progress on the tenant's replay topic (`policySimulationRun` subscription)
and stores its result. A run is a pure recomputation, so a worker that dies mid-run
leaves nothing half written: arq retries the job from the start.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Final, Protocol

from server.core.errors import DecisionGraphError, invalid_argument, not_found
from server.core.policy_simulation import (
    CandidatePolicy,
    Rule,
    SimulationRecord,
    SimulationTally,
)
from server.service.ports import Audit, Jobs, PrecedentCases, Publisher

INLINE_CASES: Final = 5_000
BATCH: Final = 5_000
MAX_FLIPS: Final = 10_000  # kept in a run's result; the tallies count every flip


class Simulations(Protocol):
    async def create(
        self, tenant_id: str, policy_id: str, request_json: str, requested_by: str, total: int
    ) -> SimulationRecord: ...

    async def get(
        self, simulation_id: str, tenant_id: str | None = None
    ) -> SimulationRecord | None: ...

    async def update(self, simulation_id: str, **fields: Any) -> SimulationRecord: ...

    async def recent(self, tenant_id: str, limit: int) -> list[SimulationRecord]: ...


def request_of(policy: CandidatePolicy) -> str:
    return json.dumps(
        {
            "policy_id": policy.policy_id,
            "rules": [asdict(r) for r in policy.rules],
            "default_decision": policy.default_decision,
            "since": policy.since,
            "until": policy.until,
        },
        sort_keys=True,
    )


def policy_of(request_json: str) -> CandidatePolicy:
    raw = json.loads(request_json)
    return CandidatePolicy(
        raw["policy_id"],
        tuple(Rule(**r) for r in raw["rules"]),
        raw["default_decision"],
        raw["since"],
        raw["until"],
    )


def result_of(tally: SimulationTally) -> str:
    flips = tally.sorted_flips()
    return json.dumps(
        {
            "evaluated": tally.evaluated,
            "flipped": len(tally.flips),
            "loosened": tally.loosened,
            "tightened": tally.tightened,
            "flipped_approvals": tally.flipped_approvals,
            "flipped_approvals_with_incident": tally.flipped_approvals_with_incident,
            "flipped_rejections": tally.flipped_rejections,
            "flips": [asdict(f) for f in flips[:MAX_FLIPS]],
        },
        sort_keys=True,
    )


async def request(
    simulations: Simulations,
    cases: PrecedentCases,
    audit: Audit,
    jobs: Jobs,
    tenant_id: str,
    candidate: Callable[[], CandidatePolicy],
    reason: str,
    key_id: str,
    inline_cases: int = INLINE_CASES,
) -> SimulationRecord:
    """Audited, refusals too; COMPLETED at once for a tenant of up to `inline_cases`
    finished cases, else QUEUED for a worker. `candidate` builds (and so validates) the
    rules."""
    try:
        if not reason.strip():
            raise invalid_argument("reason must not be empty")
        policy = candidate()
    except DecisionGraphError as error:
        await audit.record(
            tenant_id=tenant_id,
            key_id=key_id,
            action="policy.simulate",
            outcome="rejected",
            reason=reason,
            detail={"code": error.code, "message": str(error)},
        )
        raise
    total = await cases.count_finished(tenant_id)
    record = await simulations.create(
        tenant_id, policy.policy_id, request_of(policy), key_id, total
    )
    await audit.record(
        tenant_id=tenant_id,
        key_id=key_id,
        action="policy.simulate",
        outcome="accepted",
        target=record.simulation_id,
        reason=reason,
        detail={"policy_id": policy.policy_id, "rules": len(policy.rules), "cases": total},
    )
    if total <= inline_cases:
        return await run(simulations, cases, None, record.simulation_id)
    await jobs.simulation(record.simulation_id)
    return record


async def run(
    simulations: Simulations,
    cases: PrecedentCases,
    publisher: Publisher | None,
    simulation_id: str,
) -> SimulationRecord:
    """Run (or run again, after a crash) a simulation to its end."""
    record = await simulations.get(simulation_id)
    if record is None:
        raise not_found(f"Simulation not found: {simulation_id}")
    if record.status in ("COMPLETED", "FAILED"):
        return record
    tenant = record.tenant_id
    try:
        policy = policy_of(record.request_json)
        record = await simulations.update(simulation_id, status="RUNNING", processed=0)
        tally, position, processed = SimulationTally(), 0, 0
        while True:
            batch = await cases.finished_since(tenant, position, BATCH)
            tally.add(policy, batch)
            processed += len(batch)
            if batch:
                position = batch[-1].last_log_seq
            if len(batch) < BATCH:
                break
            await simulations.update(simulation_id, processed=processed)
            if publisher is not None:
                await publisher.replay_changed(tenant, position)
        record = await simulations.update(
            simulation_id,
            status="COMPLETED",
            processed=processed,
            total=max(processed, record.total),
            result_json=result_of(tally),
        )
    except DecisionGraphError as error:
        record = await simulations.update(
            simulation_id, status="FAILED", error_code=error.code, error_message=str(error)
        )
    if publisher is not None:
        await publisher.replay_changed(tenant, 0)
    return record
