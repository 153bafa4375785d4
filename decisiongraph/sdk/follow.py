"""Auto-resuming subscriptions: one async iterator that outlives connections.

The server's loss-free topics take a position (`afterLogSeq`, `afterTraceSeq`, `afterSeq`)
and deliver everything after it exactly once. A follower remembers the position of the last
item it yielded; when the connection drops (network, server restart, a slow-consumer close),
it reconnects with backoff and subscribes again from there. Refusals that a retry cannot fix
(bad credentials 4401, a missing role or tenant 4403, a GraphQL error with a code) end the
iteration with SubscriptionError.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any, Final, TypeVar

import httpx

from decisiongraph.sdk.live import LiveConnection, SubscriptionError

T = TypeVar("T")
P = TypeVar("P")

FATAL_CLOSE_CODES: Final = frozenset({4400, 4401, 4403, 4406})
MAX_BACKOFF: Final = 5.0


def _recoverable(error: SubscriptionError) -> bool:
    return error.code is None and error.close_code not in FATAL_CLOSE_CODES


async def follow(
    url: str,
    token: str,
    tenant: str | None,
    query: str,
    field: str,
    parse: Callable[[dict[str, Any]], T],
    variables: Callable[[P], Mapping[str, Any]],
    position: Callable[[T], P],
    after: P,
) -> AsyncGenerator[T, None]:
    delay = 0.1
    while True:
        try:
            async with LiveConnection(url, token, tenant) as live:
                async for data in live.subscribe(query, variables(after)):
                    item = parse(data[field])
                    after = position(item)
                    delay = 0.1  # the connection works: the next outage starts over
                    yield item
                return  # the server completed the subscription (a finished trace)
        except SubscriptionError as error:
            if not _recoverable(error):
                raise
        except (OSError, httpx.TransportError):
            pass  # server unreachable: keep trying
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_BACKOFF)
