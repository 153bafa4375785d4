"""Token -> Principal, with a short in-process cache so auth costs no query per request.

A revoked key keeps working for at most `ttl` seconds in a process that cached it.
"""

from __future__ import annotations

import time

from server.auth.principal import Principal, Role
from server.auth.tokens import bearer_token, hash_token
from server.core.errors import unauthorized
from server.service.ports import KeyLookup, KeyRecord


class Authenticator:
    def __init__(self, keys: KeyLookup, ttl: float = 10.0) -> None:
        self._keys = keys
        self._ttl = ttl
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def authenticate(self, authorization: str | None) -> Principal:
        token = bearer_token(authorization)
        if token is None:
            raise unauthorized("Missing or malformed Authorization header: use 'Bearer <token>'")
        digest = hash_token(token)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            principal = cached[1]
        else:
            principal = _principal(await self._keys.find_key(digest))
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + self._ttl, principal)
        if principal is None:
            raise unauthorized("Unknown or revoked API key")
        return principal


def _principal(record: KeyRecord | None) -> Principal | None:
    if record is None or record.revoked:
        return None
    roles = frozenset(Role(role) for role in record.roles if role in Role._value2member_map_)
    return Principal(record.key_id, record.name, frozenset(record.tenants), roles)
