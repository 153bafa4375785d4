"""The console's only way to the platform: the public GraphQL API, through the SDK.

Tests point it at an in-process server by setting `transport` (an httpx transport that
speaks HTTP and websockets, e.g. httpx-ws's ASGIWebSocketTransport).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from decisiongraph.sdk import DecisionGraphClient, GraphQLError, LiveConnection, SubscriptionError

# Tests: a factory of in-process transports (each client owns and closes its own).
transport_factory: Callable[[], httpx.AsyncBaseTransport] | None = None

VIEWER = "{ viewer { keyId name roles permissions allTenants tenants } }"


class ApiError(Exception):
    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _http(timeout: float | None = 15.0) -> httpx.AsyncClient:
    transport = transport_factory() if transport_factory is not None else None
    return httpx.AsyncClient(transport=transport, timeout=timeout)


@dataclass(frozen=True, slots=True)
class Viewer:
    key_id: str
    name: str
    roles: tuple[str, ...]
    permissions: frozenset[str]
    tenants: tuple[str, ...]

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def role_label(self) -> str:
        return ", ".join(self.roles) or "no role"


async def sign_in(url: str, token: str) -> Viewer:
    """Check a key against the API; a refused key raises ApiError."""
    # Errors leave the client's context first: some transports wrap what escapes it.
    problem: ApiError | None = None
    async with _http() as http:
        client = DecisionGraphClient(url, token, http=http)
        try:
            data = await client.execute(VIEWER)
        except GraphQLError as error:
            problem = ApiError(str(error).split(": ", 1)[-1], error.code)
        except httpx.HTTPError as error:
            problem = ApiError(f"The API at {url} is not reachable ({type(error).__name__})")
    if problem is not None:
        raise problem
    viewer = data["viewer"]
    return Viewer(
        key_id=viewer["keyId"],
        name=viewer["name"],
        roles=tuple(viewer["roles"]),
        permissions=frozenset(viewer["permissions"]),
        tenants=tuple(viewer["tenants"]),
    )


@dataclass
class ConsoleApi:
    """Queries and mutations for one signed-in key and tenant."""

    url: str
    token: str
    tenant: str | None
    _http: httpx.AsyncClient = field(default_factory=_http)

    def _client(self) -> DecisionGraphClient:
        return DecisionGraphClient(self.url, self.token, self.tenant, http=self._http)

    async def query(self, query: str, variables: Mapping[str, Any] | None = None) -> Any:
        try:
            return await self._client().execute(query, variables)
        except GraphQLError as error:
            raise ApiError(str(error).split(": ", 1)[-1], error.code) from None
        except httpx.HTTPError as error:
            raise ApiError(f"The API is not reachable ({type(error).__name__})") from None

    async def mutate(
        self, query: str, field_name: str, variables: Mapping[str, Any] | None = None
    ) -> Any:
        data = await self.query(query, variables)
        payload = data[field_name]
        if payload.get("errors"):
            first = payload["errors"][0]
            raise ApiError(first["message"], first.get("code"))
        return payload

    async def subscribe(
        self, query: str, variables: Mapping[str, Any] | None = None
    ) -> AsyncGenerator[dict[str, Any], None]:
        """One subscription on its own connection (opened and closed in this task)."""
        async with (
            _http(timeout=None) as http,
            LiveConnection(self.url, self.token, self.tenant, http=http) as live,
        ):
            async for data in live.subscribe(query, variables):
                yield data

    async def aclose(self) -> None:
        await self._http.aclose()


__all__ = ["ApiError", "ConsoleApi", "SubscriptionError", "Viewer", "sign_in"]
