"""Determinism on real PostgreSQL: for random valid multi-trace streams, incremental
projection in any chunking and batch size (each catch-up is a fresh start), reset and
catch-up, the bulk REBUILD (every table shadowed, some, or none) and VERIFY all give the
digests of the one-event-at-a-time oracle."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.core import native_projection
from server.core.append_plan import LogState, plan_batch
from server.core.bulk_projection import BulkOutcome
from server.core.envelope import envelope_from_dict
from server.core.projector import InMemoryProjector
from server.core.replay import ALL_PROJECTIONS, REBUILD, VERIFY
from server.core.validation import validate_envelope
from server.core.workflow import rebuild_in_memory
from server.service import projection, replay
from server.settings import Settings
from server.store.audit import PostgresAudit
from server.store.database import create_pool
from server.store.event_log import PostgresEventLog
from server.store.projections import PostgresProjections
from server.store.replays import PostgresReplays
from tests.support import envelope, new_tenant

TITLES = ["Renewal", "Zürich renewal", "報告 😀", "plain"]
ENTITIES = [("account", "acct-1"), ("account", "acct-2"), ("quote", "q-1")]


@st.composite
def streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Interleaved traces that respect every append rule (so all of them are stored)."""
    traces = [f"tr-{i}" for i in range(draw(st.integers(1, 4)))]
    seq = dict.fromkeys(traces, 0)
    done: set[str] = set()
    events: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 28))):
        open_traces = [t for t in traces if t not in done]
        if not open_traces:
            break
        t = draw(st.sampled_from(open_traces))
        n = seq[t]
        if n == 0:
            etype, etid = draw(st.sampled_from(ENTITIES))
            payload: dict[str, Any] = {
                "workflow": "w",
                "title": draw(st.sampled_from(TITLES)),
                "primary_entity": {"entity_type": etype, "entity_id": etid, "system": "crm"},
            }
            event = envelope(t, 0, "TraceStarted", payload)
        else:
            kind = draw(
                st.sampled_from(
                    [
                        "input",
                        "entity",
                        "policy",
                        "exception",
                        "approval",
                        "review",
                        "cite",
                        "propose",
                        "commit",
                        "finish",
                    ]
                )
            )
            shared = draw(st.integers(0, 2))  # shared ids across traces: first write wins
            policy = {"policy_id": "cap", "policy_version": draw(st.sampled_from(["1", "2"]))}
            payload, etype = {
                "input": (
                    {
                        "input_id": f"in-{shared}",
                        "facts": [],
                        "source": {"system": "crm", "object_type": "o", "object_id": "x"},
                    },
                    "InputObserved",
                ),
                "entity": (
                    {
                        "entity": {"entity_type": "quote", "entity_id": f"q-{shared}"},
                        "role": "related",
                        "facts": [],
                    },
                    "EntityObserved",
                ),
                "policy": ({"policy": policy, "inputs": [], "decision": "deny"}, "PolicyEvaluated"),
                "exception": (
                    {"exception_id": f"ex-{shared}", "policy": policy, "reason": "r"},
                    "ExceptionRequested",
                ),
                "approval": (
                    {
                        "approval_id": f"ap-{n}",
                        "decision": draw(st.sampled_from(["approved", "rejected"])),
                        "subject": {"subject_type": "exception", "subject_id": f"ex-{shared}"},
                        "approver": {"actor_type": "person", "actor_id": "fin"},
                    },
                    "ApprovalRecorded",
                ),
                "review": (
                    {
                        "template_id": draw(st.sampled_from(["incident_triage", "other"])),
                        "reason": "look again",
                        "sla_hours": draw(st.sampled_from([1, "6", None])),
                    },
                    "WorkflowReviewRequested",
                ),
                "cite": (
                    {"cited_trace_id": draw(st.sampled_from(traces)), "reason": "alike"},
                    "PrecedentCited",
                ),
                "propose": (
                    {
                        "action_id": f"act-{shared}",
                        "action_type": "update",
                        "target_system": "crm",
                        "changes": [],
                        "target_entity": {"entity_type": "opportunity", "entity_id": "o"},
                    },
                    "ActionProposed",
                ),
                "commit": ({"action_id": f"act-{shared}", "status": "success"}, "ActionCommitted"),
                "finish": (
                    {"outcome": draw(st.sampled_from(["success", "failure"]))},
                    "TraceFinished",
                ),
            }[kind]
            event = envelope(
                t,
                n,
                etype,
                payload,
                idempotency_key=f"{t}:{n}",
                occurred_at=f"2026-01-01T00:{len(events):02d}:00Z",
            )
            if kind == "finish":
                done.add(t)
        seq[t] += 1
        events.append(event)
    return events


class _Recorded(PostgresProjections):
    """The adapter, keeping how each bulk REBUILD and VERIFY ended."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outcomes: list[BulkOutcome] = []

    async def rebuild(self, *args: Any, **kwargs: Any) -> BulkOutcome:
        self.outcomes.append(await super().rebuild(*args, **kwargs))
        return self.outcomes[-1]

    async def scratch_digests(self, *args: Any, **kwargs: Any) -> BulkOutcome:
        self.outcomes.append(await super().scratch_digests(*args, **kwargs))
        return self.outcomes[-1]


async def _check(
    settings: Settings,
    events: list[dict[str, Any]],
    chunks: list[int],
    batch: int,
    small: int,
    native: bool,
) -> None:
    pool: asyncpg.Pool = await create_pool(
        settings.require_database_url, size=4, application_name="tests-determinism"
    )
    try:
        tenant = new_tenant()
        log = PostgresEventLog(pool)
        validated = [validate_envelope(envelope_from_dict(e)) for e in events]
        oracle = InMemoryProjector()
        oracle.apply_all(
            p.event for p in plan_batch(validated, LogState(0, {}, {}, frozenset()), "t")
        )
        want = oracle.digests().as_dict()
        stored = [p.event for p in plan_batch(validated, LogState(0, {}, {}, frozenset()), "t")]
        want["workflows"] = rebuild_in_memory(stored)[1]

        start = 0
        for size in chunks * (len(events) // max(1, min(chunks)) + 1):
            if start >= len(events):
                break
            await log.append(tenant, validated[start : start + size], "2026-11-21T00:00:00.000000Z")
            start += size
            # a fresh adapter each time: nothing survives between catch-ups but the tables
            await projection.catch_up(PostgresProjections(pool, batch_size=batch), None, tenant)
        projections = PostgresProjections(pool, batch_size=batch)
        _, incremental = await projections.digests(tenant, use_cache=False)
        assert _full(incremental) == want

        await projections.reset(tenant, ALL_PROJECTIONS)
        await projection.catch_up(PostgresProjections(pool, batch_size=batch + 2), None, tenant)
        _, rebuilt = await projections.digests(tenant, use_cache=False)
        assert _full(rebuilt) == want

        replays = PostgresReplays(pool)
        # The bulk REBUILD with `small` rows per table held in memory: 0 shadows every
        # table, a few shadows the graph's and replaces the rest in place, many shadow none.
        bulk = _Recorded(pool, batch_size=batch, small_table=small, native_pass=native)
        record = await replays.create(tenant, "ALL", REBUILD, "determinism", "tests")
        rebuilt_run = await replay.run_replay(replays, bulk, log, _Silent(), record.replay_id)
        assert rebuilt_run is not None and rebuilt_run.status == "COMPLETED"
        _, swapped = await projections.digests(tenant, use_cache=False)
        assert _full(swapped) == want

        record = await replays.create(tenant, "ALL", VERIFY, "determinism", "tests")
        verified = await replay.run_replay(replays, bulk, log, _Silent(), record.replay_id)
        assert verified is not None and verified.digests_match is True
        assert verified.actual == verified.expected == want
        # Generated logs are ordinary (all ingested): the native pass, when on, did both.
        assert [o.native for o in bulk.outcomes] == [native and native_projection.AVAILABLE] * 2
        await PostgresAudit(pool).record(tenant_id=tenant, key_id=None, action="test", outcome="ok")
    finally:
        await pool.close()


def _full(values: dict[str, str]) -> dict[str, str]:
    from server.core.digest import full_digest

    return values | {
        "full_projection": full_digest(
            values["context_graph"], values["trace_summary"], values["precedent_index"]
        )
    }


class _Silent:
    async def log_advanced(self, tenant_id: str, last_log_seq: int) -> None: ...
    async def health_changed(self, tenant_id: str, position: int) -> None: ...
    async def replay_changed(self, tenant_id: str, position: int) -> None: ...
    async def workflow_changed(self, tenant_id: str, position: int) -> None: ...


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    case=st.fixed_dictionaries(
        {
            "events": streams(),
            "chunks": st.lists(st.integers(1, 6), min_size=1, max_size=4),
            "batch": st.integers(1, 7),
            "small": st.sampled_from([0, 4, 10_000]),
            "native": st.booleans(),
        }
    )
)
def test_any_chunking_batching_rebuild_and_verify_agree(
    settings: Settings, case: dict[str, Any]
) -> None:
    """Incremental catch-up, a reset and catch-up, the bulk REBUILD and VERIFY, by the
    native pass or by Python (ADR 0017), all give the oracle's digests."""
    asyncio.run(_check(settings, **case))
