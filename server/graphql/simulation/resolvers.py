"""simulatePolicy and the reads of its runs: admin only, every request audited."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from server.auth.principal import Permission
from server.core.errors import DecisionGraphError, invalid_argument, not_found
from server.core.policy_simulation import CandidatePolicy, Rule
from server.graphql.context import authorize, key_id_of, services_of
from server.graphql.errors import user_errors
from server.graphql.simulation.types import (
    PolicyRuleInput,
    PolicySimulationPayload,
    PolicySimulationRun,
)
from server.service import policy_simulation
from server.service.queries import check_first


def _rule(number: int, rule: PolicyRuleInput) -> Rule:
    value = rule.value
    if isinstance(value, bool | str):
        return Rule(rule.fact, rule.op.value, value, rule.decision)
    if isinstance(value, int | float):
        return Rule(rule.fact, rule.op.value, float(value), rule.decision)
    raise invalid_argument(f"rule {number}: value must be a number, string or boolean")


@strawberry.type
class SimulationMutation:
    @strawberry.mutation(
        description="Replay the tenant's recorded decisions under candidate threshold rules "
        "without writing to the log: which would flip, and how did those turn out. Small "
        "tenants answer COMPLETED at once; larger ones run on a worker (follow it with the "
        "policySimulationRun subscription). Admin only; audited."
    )
    async def simulate_policy(
        self,
        info: Info[Any, Any],
        policy_id: str,
        rules: list[PolicyRuleInput],
        reason: str,
        default_decision: str = "allow",
        since: str | None = None,
        until: str | None = None,
    ) -> PolicySimulationPayload:
        try:
            tenant = authorize(info, Permission.ADMIN)
            services = services_of(info)

            def candidate() -> CandidatePolicy:
                rule_set = tuple(_rule(n, r) for n, r in enumerate(rules))
                return CandidatePolicy(policy_id, rule_set, default_decision, since, until)

            record = await policy_simulation.request(
                services.simulations,
                services.cases,
                services.audit,
                services.jobs,
                tenant,
                candidate,
                reason,
                key_id_of(info),
                services.settings.simulation_inline_cases,
            )
        except DecisionGraphError as error:
            return PolicySimulationPayload(simulation=None, errors=user_errors([error]))
        return PolicySimulationPayload(simulation=PolicySimulationRun(record=record), errors=[])


@strawberry.type
class SimulationQuery:
    @strawberry.field(description="A policy simulation run (admin only).")
    async def policy_simulation_run(
        self, info: Info[Any, Any], simulation_id: str
    ) -> PolicySimulationRun:
        tenant = authorize(info, Permission.ADMIN)
        record = await services_of(info).simulations.get(simulation_id, tenant)
        if record is None:
            raise not_found(f"Simulation not found: {simulation_id}")
        return PolicySimulationRun(record=record)

    @strawberry.field(description="The tenant's recent policy simulation runs, newest first.")
    async def policy_simulation_runs(
        self, info: Info[Any, Any], first: int = 20
    ) -> list[PolicySimulationRun]:
        tenant = authorize(info, Permission.ADMIN)
        check_first(first)
        records = await services_of(info).simulations.recent(tenant, first)
        return [PolicySimulationRun(record=r) for r in records]
