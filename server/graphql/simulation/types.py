"""GraphQL types of policy simulation runs (server/core/policy_simulation.py)."""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

import strawberry

from server.core.policy_simulation import SimulationRecord
from server.graphql.errors import UserError
from server.graphql.scalars import JSON


@strawberry.enum(description="How a rule compares a recorded fact with its value.")
class RuleOp(Enum):
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    EQ = "eq"
    NEQ = "neq"


@strawberry.input(
    description="A threshold rule over a recorded fact; the first that holds decides."
)
class PolicyRuleInput:
    fact: str
    op: RuleOp
    value: JSON = strawberry.field(description="A number for GT/GTE/LT/LTE; else any scalar")
    decision: str = "require_exception"


@strawberry.type(description="A past decision the candidate rules would have made differently.")
class PolicyFlip:
    trace_id: str
    title: str
    finished_at: str | None
    recorded: str = strawberry.field(description="The policy decision recorded then")
    simulated: str = strawberry.field(description="The candidate rules' decision")
    rule: int | None = strawberry.field(description="The deciding rule (0-based); none: default")
    review_decision: str | None = strawberry.field(description="What the reviewer decided")
    committed: bool
    incident: bool = strawberry.field(description="It later led to an incident review")
    outcome: str | None = strawberry.field(description="TraceFinished.outcome")


@strawberry.type
class SimulationSummary:
    evaluated: int = strawberry.field(description="Recorded decisions re-judged")
    flipped: int
    loosened: int = strawberry.field(description="Flips to the default decision")
    tightened: int = strawberry.field(description="Flips away from the default decision")
    flipped_approvals: int
    flipped_approvals_with_incident: int
    flipped_rejections: int


@strawberry.type
class SimulationError:
    code: str
    message: str


@strawberry.type(description="A counterfactual replay of recorded decisions under candidate rules.")
class PolicySimulationRun:
    record: strawberry.Private[SimulationRecord]

    @strawberry.field
    def simulation_id(self) -> str:
        return self.record.simulation_id

    @strawberry.field
    def policy_id(self) -> str:
        return self.record.policy_id

    @strawberry.field(description="QUEUED, RUNNING, COMPLETED or FAILED")
    def status(self) -> str:
        return self.record.status

    @strawberry.field(description="The rules, default decision and window asked for")
    def request(self) -> JSON:
        return JSON(json.loads(self.record.request_json))

    @strawberry.field(description="Finished cases when it was requested")
    def total(self) -> int:
        return self.record.total

    @strawberry.field(description="Cases re-judged so far")
    def processed(self) -> int:
        return self.record.processed

    @strawberry.field
    def requested_by(self) -> str:
        return self.record.requested_by

    @strawberry.field
    def requested_at(self) -> str:
        return self.record.requested_at.isoformat()

    @strawberry.field
    def finished_at(self) -> str | None:
        return self.record.finished_at.isoformat() if self.record.finished_at else None

    @strawberry.field
    def error(self) -> SimulationError | None:
        if self.record.error_code is None:
            return None
        return SimulationError(code=self.record.error_code, message=self.record.error_message or "")

    def _result(self) -> dict[str, Any] | None:
        return json.loads(self.record.result_json) if self.record.result_json else None

    @strawberry.field(description="The tallies, once COMPLETED")
    def summary(self) -> SimulationSummary | None:
        result = self._result()
        if result is None:
            return None
        return SimulationSummary(**{k: v for k, v in result.items() if k != "flips"})

    @strawberry.field(description="The flips, oldest first, once COMPLETED")
    def flips(self, first: int = 100) -> list[PolicyFlip]:
        result = self._result()
        return [PolicyFlip(**f) for f in (result or {}).get("flips", [])[: max(first, 0)]]


@strawberry.type
class PolicySimulationPayload:
    simulation: PolicySimulationRun | None
    errors: list[UserError]
