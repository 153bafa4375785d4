"""GraphQL types of scored precedent (server/core/precedent_score.py)."""

from __future__ import annotations

import strawberry

from server.core.precedent_score import Match, PrecedentWarning, ScoredCase
from server.graphql.scalars import Long
from server.service.scored_precedent import Ranked


@strawberry.type(description="One feature's part of a precedent's score.")
class PrecedentMatch:
    feature: str = strawberry.field(
        description="workflow, policy, codes, primary_entity, entities or fact"
    )
    detail: str = strawberry.field(description="What matched, in words")
    contribution: float = strawberry.field(description="What it added to the score")


@strawberry.type(description="How a past decision turned out.")
class CaseOutcome:
    decision: str | None = strawberry.field(description="The last review decision recorded")
    policy_decision: str | None = strawberry.field(description="The policy's own verdict")
    committed: bool = strawberry.field(description="An action was committed successfully")
    trace_outcome: str | None = strawberry.field(description="TraceFinished.outcome")
    incident: bool = strawberry.field(description="It led to an incident review")


@strawberry.type(description="A past finished trace, scored by similarity and explained.")
class ScoredPrecedent:
    trace_id: str
    title: str
    workflow: str
    score: float = strawberry.field(description="0 to 1; see docs/precedent.md")
    matches: list[PrecedentMatch]
    outcome: CaseOutcome
    finished_at: str | None
    last_log_seq: Long


@strawberry.type(description="A review decision that would go against the strongest precedent.")
class PrecedentWarningNote:
    decision: str = strawberry.field(
        description="approved or rejected: the decision it warns about"
    )
    message: str
    trace_ids: list[str] = strawberry.field(description="The precedents it goes against")


@strawberry.type(description="Scored precedent for a trace, with warnings for its review.")
class ScoredPrecedents:
    trace_id: str
    results: list[ScoredPrecedent]
    warnings: list[PrecedentWarningNote]
    candidates: int = strawberry.field(description="Finished cases scored")
    indexed_to: Long = strawberry.field(
        description="The log position the case projection had reached"
    )


def match_of(match: Match) -> PrecedentMatch:
    return PrecedentMatch(
        feature=match.feature, detail=match.detail, contribution=match.contribution
    )


def scored_of(scored: ScoredCase) -> ScoredPrecedent:
    case = scored.case
    return ScoredPrecedent(
        trace_id=case.trace_id,
        title=case.title,
        workflow=case.workflow,
        score=scored.score,
        matches=[match_of(m) for m in scored.matches],
        outcome=CaseOutcome(
            decision=case.decision,
            policy_decision=case.policy_decision,
            committed=case.committed,
            trace_outcome=case.outcome,
            incident=case.incident,
        ),
        finished_at=case.finished_at,
        last_log_seq=Long(case.last_log_seq),
    )


def warning_of(warning: PrecedentWarning) -> PrecedentWarningNote:
    return PrecedentWarningNote(
        decision=warning.decision, message=warning.message, trace_ids=list(warning.trace_ids)
    )


def ranked_of(ranked: Ranked) -> ScoredPrecedents:
    return ScoredPrecedents(
        trace_id=ranked.case.trace_id,
        results=[scored_of(s) for s in ranked.results],
        warnings=[warning_of(w) for w in ranked.warnings],
        candidates=ranked.candidates,
        indexed_to=Long(ranked.indexed_to),
    )
