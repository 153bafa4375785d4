"""Scored precedent, beside the spec's `precedents` (which stays exactly as §7.6 says)."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from server.auth.principal import Permission
from server.graphql.context import authorize, services_of
from server.graphql.precedent.types import ScoredPrecedents, ranked_of


@strawberry.type
class PrecedentQuery:
    @strawberry.field(
        description="Past finished traces most like this one, scored and explained, with "
        "their outcomes and warnings for a review that would go against them "
        "(docs/precedent.md). The trace itself may be open."
    )
    async def scored_precedents(
        self, info: Info[Any, Any], trace_id: str, first: int = 10
    ) -> ScoredPrecedents:
        tenant = authorize(info, Permission.READ)
        ranked = await services_of(info).precedent.rank(tenant, trace_id, first)
        return ranked_of(ranked)
