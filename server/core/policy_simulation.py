"""Counterfactual policy replay: recorded decisions re-judged under candidate rules.

A candidate policy is an ordered list of threshold rules over recorded facts, the shape
the demo's discount policy has ("requested_discount_pct above 15 requires an
exception"): the first rule whose fact compares true decides, and a case no rule matches
gets the default decision. Each past finished case that the policy judged is re-judged
from the facts it recorded; a *flip* is a case whose simulated decision differs from the
one recorded. Flips carry how the case turned out, so the question "had this version
been live, which decisions would have gone the other way, and how did those end?" is
answered with the approvals, rejections and incidents among them. Nothing is written to
the log; the result is a pure function of the cases, the rules and the window.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from server.core.errors import invalid_argument
from server.core.precedent_cases import Case, Fact

OPS: Final = ("gt", "gte", "lt", "lte", "eq", "neq")
NUMERIC_OPS: Final = ("gt", "gte", "lt", "lte")
MAX_RULES: Final = 50
DEFAULT_DECISION: Final = "allow"


@dataclass(frozen=True, slots=True)
class Rule:
    fact: str
    op: str
    value: float | str | bool
    decision: str = "require_exception"

    def matches(self, facts: dict[str, Fact]) -> bool:
        have = facts.get(self.fact)
        if have is None:
            return False
        if self.op in NUMERIC_OPS:
            if not isinstance(have, float) or not isinstance(self.value, float):
                return False
            return {
                "gt": have > self.value,
                "gte": have >= self.value,
                "lt": have < self.value,
                "lte": have <= self.value,
            }[self.op]
        same = type(have) is type(self.value) and have == self.value
        return same if self.op == "eq" else not same


@dataclass(frozen=True, slots=True)
class CandidatePolicy:
    policy_id: str
    rules: tuple[Rule, ...]
    default_decision: str = DEFAULT_DECISION
    since: str | None = None  # finished at or after (ISO 8601 text, compared as text)
    until: str | None = None  # finished at or before

    def __post_init__(self) -> None:
        if not self.policy_id:
            raise invalid_argument("policyId must not be empty")
        if not 1 <= len(self.rules) <= MAX_RULES:
            raise invalid_argument(f"rules must hold 1 to {MAX_RULES} rules")
        for number, rule in enumerate(self.rules):
            if not rule.fact or not rule.decision:
                raise invalid_argument(f"rule {number}: fact and decision must not be empty")
            if rule.op not in OPS:
                raise invalid_argument(f"rule {number}: op must be one of {', '.join(OPS)}")
            if rule.op in NUMERIC_OPS and not isinstance(rule.value, float):
                raise invalid_argument(f"rule {number}: {rule.op} compares numbers only")
        if self.since and self.until and self.since > self.until:
            raise invalid_argument("since must not be after until")

    def decide(self, facts: dict[str, Fact]) -> tuple[str, int | None]:
        """The decision for these facts, and the number of the rule that made it."""
        for number, rule in enumerate(self.rules):
            if rule.matches(facts):
                return rule.decision, number
        return self.default_decision, None

    def covers(self, case: Case) -> bool:
        if not case.finished or self.policy_id not in case.policy_decisions:
            return False
        finished = case.finished_at or ""
        return (not self.since or finished >= self.since) and (
            not self.until or finished <= self.until
        )


@dataclass(frozen=True, slots=True)
class Flip:
    trace_id: str
    title: str
    finished_at: str | None
    recorded: str
    simulated: str
    rule: int | None
    review_decision: str | None
    committed: bool
    incident: bool
    outcome: str | None


@dataclass
class SimulationTally:
    """Running totals; `add` is fed cases in any order, `flips` come out sorted."""

    evaluated: int = 0
    loosened: int = 0  # would have gone through on the default decision
    tightened: int = 0  # went through on the default, would now be stopped
    flipped_approvals: int = 0
    flipped_approvals_with_incident: int = 0
    flipped_rejections: int = 0
    flips: list[Flip] = field(default_factory=list)

    def add(self, policy: CandidatePolicy, cases: Iterable[Case]) -> None:
        for case in cases:
            if not policy.covers(case):
                continue
            self.evaluated += 1
            recorded = case.policy_decisions[policy.policy_id]
            simulated, rule = policy.decide(case.facts)
            if simulated == recorded:
                continue
            flip = Flip(
                case.trace_id, case.title, case.finished_at, recorded, simulated, rule,
                case.decision, case.committed, case.incident, case.outcome,
            )  # fmt: skip
            self.flips.append(flip)
            self.loosened += simulated == policy.default_decision
            self.tightened += recorded == policy.default_decision
            if case.decision == "approved":
                self.flipped_approvals += 1
                self.flipped_approvals_with_incident += case.incident
            elif case.decision == "rejected":
                self.flipped_rejections += 1

    def sorted_flips(self) -> Sequence[Flip]:
        return sorted(self.flips, key=lambda f: (f.finished_at or "", f.trace_id))


@dataclass(frozen=True, slots=True)
class SimulationRecord:
    simulation_id: str
    tenant_id: str
    policy_id: str
    request_json: str
    status: str
    requested_by: str
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    total: int
    processed: int
    result_json: str | None
    error_code: str | None
    error_message: str | None
