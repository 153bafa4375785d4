"""Catching up the precedent case projection (store/precedent_cases.py)."""

from __future__ import annotations

import time

from server.service.ports import PrecedentCases


async def catch_up(cases: PrecedentCases, tenant_id: str, budget_seconds: float = 10.0) -> int:
    """Batch after batch until caught up (or another worker holds it, or out of time);
    the position reached."""
    deadline = time.monotonic() + budget_seconds
    while True:
        reached, more = await cases.catch_up(tenant_id)
        if not more or time.monotonic() > deadline:
            return reached
