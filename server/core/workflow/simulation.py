"""The studio's heuristic dry run of a policy over past reviews."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from server.core.workflow.templates import TEMPLATES, Template, workflow_id_of

# -- the studio: a heuristic dry run (spec §4.7, with `failure` counted as unfavourable) ---

UNFAVOURABLE: Final = ("failure", "failed", "rejected", "deny", "denied", "abandoned")


@dataclass(frozen=True, slots=True)
class Simulation:
    template: Template
    risk_signals: tuple[str, ...]
    priority: str
    recommended_reason: str
    replay_projection: str
    workflow_id: str


def simulate(
    trace_id: str,
    title: str,
    outcome: str | None,
    finished: bool,
    has_exception: bool,
    precedent_outcomes: Sequence[str | None],
    template_id: str | None = None,
) -> Simulation:
    unfavourable = outcome is not None and outcome.lower() in UNFAVOURABLE
    distinct = {o for o in precedent_outcomes if o is not None}
    signals = []
    if has_exception:
        signals.append("exception requested")
    if unfavourable:
        signals.append("unfavorable outcome")
    if not finished:
        signals.append("trace still active")
    if not precedent_outcomes:
        signals.append("no close precedents")
    elif len(distinct) > 1 or (outcome is not None and distinct and outcome not in distinct):
        signals.append("precedent divergence")
    if has_exception or unfavourable:
        priority = "urgent"
    elif "precedent divergence" in signals or not finished:
        priority = "high"
    else:
        priority = "normal"
    if template_id in TEMPLATES:
        template = TEMPLATES[template_id]
    elif has_exception:
        template = TEMPLATES["exception_follow_up"]
    elif unfavourable:
        template = TEMPLATES["incident_triage"]
    else:
        template = TEMPLATES["precedent_gap_review"]
    reason = (
        f"{template.title} opened for {title}: {', '.join(signals)}"
        if signals
        else "operator review requested"
    )
    return Simulation(
        template=template,
        risk_signals=tuple(signals),
        priority=priority,
        recommended_reason=reason,
        replay_projection="all" if len(signals) > 2 else "trace_summary",
        workflow_id=workflow_id_of(trace_id, "trace_review", template.template_id),
    )
