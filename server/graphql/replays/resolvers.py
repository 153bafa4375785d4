"""Replay queries and mutations; every request is audited, accepted or not."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from server.auth.principal import Permission
from server.core.errors import DecisionGraphError, not_found
from server.graphql.context import authorize, key_id_of, services_of
from server.graphql.errors import user_errors
from server.graphql.replays.types import (
    Replay,
    ReplayMode,
    ReplayPayload,
    ReplayProjection,
    replay_of,
)
from server.service import replay
from server.service.queries import check_first


@strawberry.type
class ReplayQuery:
    @strawberry.field(description="A replay run of the tenant.")
    async def replay(self, info: Info[Any, Any], replay_id: str) -> Replay:
        tenant = authorize(info, Permission.ADMIN)
        record = await services_of(info).replays.get(replay_id, tenant)
        if record is None:
            raise not_found(f"Replay not found: {replay_id}")
        return replay_of(record)

    @strawberry.field(description="Recent replay runs of the tenant, newest first.")
    async def replays(self, info: Info[Any, Any], first: int = 20) -> list[Replay]:
        tenant = authorize(info, Permission.ADMIN)
        check_first(first)
        return [replay_of(r) for r in await services_of(info).replays.recent(tenant, first)]


@strawberry.type
class ReplayMutation:
    @strawberry.mutation(description="Queue a replay: CATCH_UP, REBUILD, or VERIFY (compare).")
    async def request_replay(
        self,
        info: Info[Any, Any],
        projection: ReplayProjection,
        mode: ReplayMode,
        reason: str,
    ) -> ReplayPayload:
        try:
            tenant = authorize(info, Permission.ADMIN)
            services = services_of(info)
            record = await replay.request_replay(
                services.replays,
                services.audit,
                services.jobs,
                tenant,
                projection.value,
                mode.value,
                reason,
                key_id_of(info),
            )
        except DecisionGraphError as error:
            return ReplayPayload(replay=None, errors=user_errors([error]))
        return ReplayPayload(replay=replay_of(record), errors=[])

    @strawberry.mutation(description="Cancel a queued or running replay.")
    async def cancel_replay(self, info: Info[Any, Any], replay_id: str) -> ReplayPayload:
        try:
            tenant = authorize(info, Permission.ADMIN)
            services = services_of(info)
            record = await replay.cancel_replay(
                services.replays, services.audit, tenant, replay_id, key_id_of(info)
            )
        except DecisionGraphError as error:
            return ReplayPayload(replay=None, errors=user_errors([error]))
        return ReplayPayload(replay=replay_of(record), errors=[])
