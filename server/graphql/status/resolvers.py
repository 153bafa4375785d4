"""Who am I, how is the platform, how is my tenant: what a console needs to frame itself."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

import strawberry
from strawberry.types import Info

from server.auth.principal import Permission
from server.core.errors import unauthorized
from server.graphql.context import authorize, context_of, services_of


@strawberry.type(description="The API key making the request.")
class Viewer:
    key_id: str
    name: str
    roles: list[str]
    permissions: list[str]
    all_tenants: bool
    tenants: list[str] = strawberry.field(
        description="The tenants this key may use (every known tenant for a '*' key)."
    )


@strawberry.type
class ComponentStatus:
    name: str
    ok: bool
    detail: str


@strawberry.type
class SystemStatus:
    version: str
    server_time: str
    components: list[ComponentStatus]


@strawberry.type
class WorkflowCount:
    workflow: str
    traces: int


@strawberry.type
class OutcomeCount:
    outcome: str
    traces: int


@strawberry.type(description="The tenant at a glance, from the trace summary projection.")
class TenantStatus:
    tenant_id: str
    traces: int
    open_traces: int
    finished_traces: int
    last_activity_at: str | None
    workflow_mix: list[WorkflowCount]
    outcomes: list[OutcomeCount]


def _version() -> str:
    try:
        return version("decisiongraph")
    except PackageNotFoundError:
        return "dev"


@strawberry.type
class StatusQuery:
    @strawberry.field(description="The key making this request: its roles and tenants.")
    async def viewer(self, info: Info[Any, Any]) -> Viewer:
        principal = context_of(info).principal
        if principal is None:
            raise unauthorized("Authentication required")
        tenants = sorted(t for t in principal.tenants if t != "*")
        if principal.all_tenants:
            tenants = await services_of(info).keys.tenants()
        return Viewer(
            key_id=principal.key_id,
            name=principal.name,
            roles=sorted(principal.roles),
            permissions=sorted(principal.permissions),
            all_tenants=principal.all_tenants,
            tenants=tenants,
        )

    @strawberry.field(description="The platform's parts, as the server sees them now.")
    async def system_status(self, info: Info[Any, Any]) -> SystemStatus:
        authorize(info, Permission.READ)
        services = services_of(info)
        components = []
        try:
            await services.keys.tenants()
            components.append(ComponentStatus(name="database", ok=True, detail="reachable"))
        except Exception as exc:
            components.append(ComponentStatus(name="database", ok=False, detail=type(exc).__name__))
        try:
            alive = await services.jobs.worker_heartbeats()
            components.append(ComponentStatus(name="redis", ok=True, detail="reachable"))
            components.append(
                ComponentStatus(
                    name="workers",
                    ok=bool(alive),
                    detail="heartbeat seen" if alive else "no worker heartbeat",
                )
            )
        except Exception as exc:
            components.append(ComponentStatus(name="redis", ok=False, detail=type(exc).__name__))
            components.append(ComponentStatus(name="workers", ok=False, detail="unknown"))
        connected = services.hub.connected.is_set()
        components.append(
            ComponentStatus(
                name="live updates",
                ok=connected,
                detail="notices flowing" if connected else "polling the log every second",
            )
        )
        return SystemStatus(
            version=_version(),
            server_time=services.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            components=components,
        )

    @strawberry.field(description="Trace counts, last activity and workflow mix.")
    async def tenant_status(self, info: Info[Any, Any]) -> TenantStatus:
        tenant = authorize(info, Permission.READ)
        data = await services_of(info).projections.tenant_status(tenant)
        return TenantStatus(
            tenant_id=tenant,
            traces=data["traces"],
            open_traces=data["open"],
            finished_traces=data["traces"] - data["open"],
            last_activity_at=data["last_activity"],
            workflow_mix=[WorkflowCount(workflow=w, traces=n) for w, n in data["workflow_mix"]],
            outcomes=[OutcomeCount(outcome=o, traces=n) for o, n in data["outcomes"]],
        )
