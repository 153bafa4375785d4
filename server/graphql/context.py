"""The typed per-request context and the authorization helper every resolver uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from strawberry.litestar import BaseContext

from server.auth.authenticator import Authenticator
from server.auth.principal import Permission, Principal
from server.core.errors import unauthorized
from server.core.validation import Limits
from server.pubsub.hub import NoticeHub
from server.service.live import LiveFeeds
from server.service.policy_simulation import Simulations
from server.service.ports import (
    Audit,
    Clock,
    EventLog,
    Jobs,
    PrecedentCases,
    Projections,
    Publisher,
    RateLimiter,
    Replays,
    Workflows,
)
from server.service.scored_precedent import ScoredPrecedents
from server.settings import Settings
from server.store.api_keys import PostgresKeyStore

if TYPE_CHECKING:
    from strawberry.types import Info


@dataclass
class Services:
    """What resolvers may reach; built once by the composition root (server/app.py)."""

    settings: Settings
    log: EventLog
    keys: PostgresKeyStore
    publisher: Publisher
    clock: Clock
    authenticator: Authenticator
    projections: Projections
    replays: Replays
    audit: Audit
    jobs: Jobs
    live: LiveFeeds
    hub: NoticeHub
    workflows: Workflows
    rate_limiter: RateLimiter
    precedent: ScoredPrecedents
    cases: PrecedentCases
    simulations: Simulations

    @property
    def limits(self) -> Limits:
        return self.settings.limits


class DGContext(BaseContext, kw_only=True):
    services: Any
    principal: Principal | None = None
    tenant_header: str | None = None


def context_of(info: Info[Any, Any]) -> DGContext:
    context: DGContext = info.context
    return context


def key_id_of(info: Info[Any, Any]) -> str:
    """The calling key's id, as audit records name it."""
    principal = context_of(info).principal
    return principal.key_id if principal else "anonymous"


def services_of(info: Info[Any, Any]) -> Services:
    services: Services = context_of(info).services
    return services


def authorize(info: Info[Any, Any], permission: Permission) -> str:
    """The tenant this request acts on, once the key is known to hold `permission` there."""
    return authorize_context(context_of(info), permission)


def authorize_context(context: DGContext, permission: Permission) -> str:
    if context.principal is None:
        raise unauthorized("Authentication required")
    tenant = context.principal.tenant_for(context.tenant_header)
    context.principal.require(permission)
    return tenant
