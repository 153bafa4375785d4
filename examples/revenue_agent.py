"""The flagship scenario, end to end, against a running DecisionGraph.

An AI revenue agent asks for a renewal discount above the policy cap. It records its trace,
finds a precedent and cites it; the policy exception lands in the finance inbox; an approver
decides with the precedent beside it; the agent, following its trace live, sees the approval,
commits the CRM change and finishes; an investigator replays the projections and checks that
the digests match.

    python examples/revenue_agent.py --url http://127.0.0.1:8000 --token $DG_TOKEN

One admin key (the one `make up` prints) plays every part; in production the agent would hold
a `writer` key and the approver a `reviewer` key. Every run makes a new trace; the precedent
is recorded once (its events have fixed identities, so re-running only replays them).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from contextlib import aclosing
from decimal import Decimal

from decisiongraph.sdk import (
    Actor,
    Change,
    DecisionGraphClient,
    Entity,
    Event,
    Fact,
    Policy,
    Source,
    SourceObject,
    Trace,
    evidence,
)

CAP = Policy("discount-cap", "2026.03")
CAP_PCT = 15
AGENT = Source("revenue-agent", "decisiongraph", "renewals")
POLICY_ENGINE = Source("policy-engine", "decisiongraph", "policy")
BOT = Actor.agent("revenue-agent-7")
ACCOUNT = Entity("account", "acct-northwind", "crm")
PRECEDENT = "renewal-northwind-2025"


def say(step: str, message: str) -> None:
    print(f"[{step}] {message}", flush=True)


def precedent_events() -> list[Event]:
    """Last year's renewal: above the cap, approved by finance, committed."""
    t = Trace(PRECEDENT, AGENT, BOT, correlation_id=f"renewal:{PRECEDENT}")
    opportunity = SourceObject("crm", "opportunity", "opp-northwind-2025")
    facts = [Fact.of("requested_discount_pct", 19), Fact.of("sales_stage", "renewal")]
    at = "2025-11-02T09:0{}:00Z".format
    return [
        t.started("revenue_exception", "Northwind renewal 2025", ACCOUNT, occurred_at=at(0)),
        t.input_observed("input:northwind:2025", opportunity, facts, occurred_at=at(1)),
        t.policy_evaluated(
            CAP,
            ["input:northwind:2025"],
            "require_exception",
            violations=["discount_threshold"],
            explanation="19% is above the 15% cap",
            source=POLICY_ENGINE,
            occurred_at=at(2),
        ),
        t.exception_requested(
            "ex-northwind-2025",
            CAP,
            "Three-year commitment offsets the discount",
            source=POLICY_ENGINE,
            occurred_at=at(3),
        ),
        t.approval_recorded(
            "approval:northwind:2025",
            "ex-northwind-2025",
            Actor.person("finance-maya"),
            "approved",
            reason="Margin floor holds on a three-year term",
            occurred_at=at(4),
        ),
        t.finished("success", summary="Renewed at 19% for 36 months", occurred_at=at(5)),
    ]


async def run(url: str, token: str, tenant: str, trace_id: str) -> bool:
    async with DecisionGraphClient(url, token, tenant) as dg:
        # 0. History the agent can learn from.
        await dg.append(precedent_events())

        # 1. Ingest: the agent records what it saw and what the policy said.
        trace = Trace(trace_id, AGENT, BOT, correlation_id=f"renewal:{trace_id}")
        requested = 22
        opportunity = SourceObject("crm", "opportunity", f"opp-{trace_id}")
        started = trace.started("revenue_exception", "Northwind renewal 2026", ACCOUNT)
        observed = trace.input_observed(
            f"input:{trace_id}",
            opportunity,
            [
                Fact.of("requested_discount_pct", requested),
                Fact.of("annual_contract_value_usd", 480000),
                Fact.of("margin_after_discount", Decimal("0.31")),
            ],
        )
        opened = [started, observed]
        stored = await dg.append(opened)
        say("ingest", f"trace {trace_id} started at logSeq {stored[0].log_seq}")

        # 2. Policy trigger: above the cap, so an exception is required.
        evaluated = trace.policy_evaluated(
            CAP,
            [f"input:{trace_id}"],
            "require_exception",
            violations=["discount_threshold"],
            explanation=f"{requested}% is above the {CAP_PCT}% renewal cap",
            source=POLICY_ENGINE,
            causation_event_id=observed.event_id,
        )
        exception = trace.exception_requested(
            f"ex-{trace_id}",
            CAP,
            f"Strategic renewal asks {requested}% against a {CAP_PCT}% cap",
            evidence=evidence(f"crm://opportunity/opp-{trace_id}"),
            source=POLICY_ENGINE,
            causation_event_id=evaluated.event_id,
        )
        stored = await dg.append([evaluated, exception])
        say("policy", f"discount-cap requires an exception ({requested}% > {CAP_PCT}%)")

        # 3. Precedent: similar finished decisions under the same policy and account.
        precedents = await dg.precedents(
            policy_id=CAP.policy_id,
            entity_type=ACCOUNT.entity_type,
            entity_id=ACCOUNT.entity_id,
            at_least=stored[-1].log_seq,
        )
        best = next((p for p in precedents if p.trace_id != trace_id), None)
        if best is None:
            say("precedent", "no precedent found")
            return False
        cited = trace.precedent_cited(
            best.trace_id, f"Same account and policy; outcome {best.outcome}",
            similarity_score="0.88",
        )  # fmt: skip
        stored = await dg.append([cited])
        say("precedent", f"cited {best.trace_id} (outcome {best.outcome})")

        # 4. Operations view: the review is in the finance inbox, with its SLA clock.
        (review,) = await dg.workflows(trace_id=trace_id, at_least=stored[-1].log_seq)
        health = await dg.projection_health()
        lag = max(p.pending for p in health.projections)
        say("operations", f"{review.workflow_id} is {review.status}, due {review.sla_due_at}")
        say("operations", f"projections at {health.projected_to}/{health.last_log_seq}, lag {lag}")

        # 5 and 6. The agent follows its own trace; the approver decides; the agent commits.
        async with aclosing(dg.follow_trace(trace_id, after_trace_seq=cited.trace_seq)) as events:
            decided, event_id = await dg.review(
                review.workflow_id,
                "approve",
                f"Precedent {best.trace_id} approved a similar exception; margin floor holds",
                evidence=evidence(f"trace://{best.trace_id}"),
                request_id=f"finance:{trace_id}",
            )
            say("review", f"finance approved: {decided.status} (event {event_id})")
            async for event in events:
                if event.event_type == "ApprovalRecorded":
                    break
        # The approval took a position in the trace: continue after it.
        trace = await dg.resume_trace(trace_id, AGENT, BOT)
        proposed = trace.action_proposed(
            f"action:{trace_id}",
            "update",
            Entity("opportunity", f"opp-{trace_id}", "crm"),
            "crm",
            [Change("discount_pct", requested, old_value=CAP_PCT)],
        )
        committed = trace.action_committed(
            proposed.payload["action_id"], "success", external_reference="crm-sync-7781",
            causation_event_id=proposed.event_id,
        )  # fmt: skip
        finished = trace.finished("success", summary=f"Renewed at {requested}% with approval")
        stored = await dg.append([proposed, committed, finished])
        say("commit", f"CRM updated; trace finished at logSeq {stored[-1].log_seq}")

        # 7. Replay verification: rebuild every projection from the log and compare.
        replay = await dg.request_replay("ALL", "VERIFY", f"investigate {trace_id}")
        async with asyncio.timeout(120):
            replay = await dg.wait_replay(replay.replay_id)
        health = await dg.projection_health(at_least=stored[-1].log_seq)
        say("replay", f"{replay.replay_id} {replay.status}, digests match: {replay.digests_match}")
        say("replay", f"full projection {health.digests.full_projection}")
        return replay.status == "COMPLETED" and replay.digests_match is True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("DG_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--token", default=os.environ.get("DG_TOKEN"))
    parser.add_argument("--tenant", default=os.environ.get("DG_TENANT", "revenue-demo"))
    parser.add_argument("--trace-id", default=f"renewal-northwind-{uuid.uuid4().hex[:8]}")
    args = parser.parse_args()
    if not args.token:
        parser.error("an API key is needed: --token or DG_TOKEN (make up prints one)")
    ok = asyncio.run(run(args.url, args.token, args.tenant, args.trace_id))
    print("scenario complete" if ok else "scenario FAILED", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
