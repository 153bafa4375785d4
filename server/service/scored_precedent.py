"""Scored precedent for a live trace: use cases over the case projection.

Each server process keeps, per tenant, an in-memory `CaseIndex` of finished cases and
tops it up from the projection before a query (only cases that finished since its last
look: a finished case never changes). The live trace's own case is folded from the log
on each query, so it is never stale however far the projection lags.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from server.core.errors import invalid_argument, not_found
from server.core.precedent_cases import Case, fold_cases
from server.core.precedent_query import MAX_QUERY_LIMIT
from server.core.precedent_score import (
    CaseIndex,
    PrecedentWarning,
    ScoredCase,
    precedent_warnings,
)
from server.service.ports import EventLog, PrecedentCases

LOAD_BATCH: Final = 20_000
MAX_TENANTS: Final = 64  # indexes kept per process, least recently used dropped first
MAX_SCORED: Final = 100


@dataclass(frozen=True, slots=True)
class Ranked:
    case: Case
    results: tuple[ScoredCase, ...]
    warnings: tuple[PrecedentWarning, ...]
    indexed_to: int  # the case projection's position when the index was topped up
    candidates: int


@dataclass
class _Loaded:
    index: CaseIndex
    position: int = 0  # the last loaded case's finishing position
    cursor: int = 0  # the projection's position when last topped up


class ScoredPrecedents:
    def __init__(self, cases: PrecedentCases, log: EventLog) -> None:
        self._cases = cases
        self._log = log
        self._loaded: OrderedDict[str, _Loaded] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    async def index(self, tenant_id: str) -> tuple[CaseIndex, int]:
        """The tenant's index, topped up with every case finished since the last call."""
        lock = self._locks.setdefault(tenant_id, asyncio.Lock())
        async with lock:
            loaded = self._loaded.get(tenant_id)
            if loaded is None:
                loaded = self._loaded[tenant_id] = _Loaded(CaseIndex())
                while len(self._loaded) > MAX_TENANTS:
                    dropped, _ = self._loaded.popitem(last=False)
                    self._locks.pop(dropped, None)
            self._loaded.move_to_end(tenant_id)
            # The cursor first: every case finished up to it is then in what we read
            # (the projection commits whole batches in log order).
            loaded.cursor = await self._cases.cursor(tenant_id)
            while True:
                batch = await self._cases.finished_since(tenant_id, loaded.position, LOAD_BATCH)
                for case in batch:
                    loaded.index.add(case)
                    loaded.position = case.last_log_seq
                if len(batch) < LOAD_BATCH:
                    break
            return loaded.index, loaded.cursor

    async def rank(self, tenant_id: str, trace_id: str, limit: int = 10) -> Ranked:
        if not 1 <= limit <= MAX_SCORED:
            raise invalid_argument(f"limit must be between 1 and {MAX_SCORED}")
        events = await self._log.trace_events(tenant_id, trace_id, limit=MAX_QUERY_LIMIT)
        if not events:
            raise not_found(f"Trace {trace_id} not found")
        case = fold_cases(events, {})[trace_id]
        index, position = await self.index(tenant_id)
        results = index.rank(case, limit)
        return Ranked(
            case, tuple(results), tuple(precedent_warnings(results)), position, len(index)
        )
