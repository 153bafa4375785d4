"""Fixed-window request counters in Redis, shared by every server process.

One pipelined INCR + EXPIRE per request. If Redis cannot answer, requests are admitted:
Redis carries no state the platform needs to be correct (spec: appends and reads keep
working while it is down), and a limiter must not turn a notice outage into an API outage.
"""

from __future__ import annotations

import logging
import time

from redis.asyncio import Redis

from server.core.rate_limit import WINDOW_SECONDS, Admission, RateLimits, Scope, window_at

_log = logging.getLogger(__name__)


class RedisRateLimiter:
    def __init__(self, redis: Redis, namespace: str, limits: RateLimits) -> None:
        self._redis = redis
        self._namespace = namespace
        self.limits = limits
        self._warned_at = 0.0

    async def admit(self, key_id: str, tenant_id: str, scope: Scope) -> Admission | None:
        """None when the scope is unlimited (or Redis is unreachable)."""
        limit = self.limits.of(scope)
        if not limit:
            return None
        window = window_at(time.time())
        counter = f"{self._namespace}:rate:{scope}:{key_id}:{tenant_id}:{window.index}"
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incr(counter)
                pipe.expire(counter, 2 * WINDOW_SECONDS)
                used, _ = await pipe.execute()
        except Exception:
            now = time.monotonic()
            if now - self._warned_at > 10:
                self._warned_at = now
                _log.warning("rate limiter: Redis unreachable; admitting requests unchecked")
            return None
        used = int(used)
        return Admission(
            allowed=used <= limit,
            limit=limit,
            remaining=max(limit - used, 0),
            retry_after=window.retry_after,
        )
