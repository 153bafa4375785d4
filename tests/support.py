"""Helpers shared by the test suites: golden data, event builders, a GraphQL client."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT.parent / "shared" / "spec" / "golden"
SCENARIOS = ("dealdesk", "renewal", "support")


def require_golden() -> Path:
    if not GOLDEN.is_dir():
        pytest.skip(f"golden data folder {GOLDEN} is absent (CI always provides it)")
    return GOLDEN


def golden_events(scenario: str) -> list[dict[str, Any]]:
    data = json.loads((require_golden() / scenario / "events.json").read_text())
    events: list[dict[str, Any]] = data["events"]
    return events


def golden_digests(scenario: str) -> dict[str, str]:
    text = (require_golden() / scenario / "expected_digest.txt").read_text()
    pairs = (line.split(":", 1) for line in text.splitlines() if line.strip())
    return dict(pairs)


def derived_expectations() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (require_golden() / "derived" / "derived_expectations.json").read_text()
    )
    return data


def fixture_bundle() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (require_golden() / "reference_fixture_bundle.json").read_text()
    )
    return data


def new_tenant() -> str:
    return "t-" + uuid.uuid4().hex[:12]


def to_input(event: Mapping[str, Any]) -> dict[str, Any]:
    """A fixture-style (snake_case) envelope as the GraphQL EventInput (camelCase)."""
    source = event["source"]
    actor = event["actor"]
    return {
        "eventId": event["event_id"],
        "traceId": event["trace_id"],
        "traceSeq": event["trace_seq"],
        "eventType": event["event_type"],
        "occurredAt": event["occurred_at"],
        "source": {
            "producerId": source["producer_id"],
            "system": source["system"],
            "subsystem": source.get("subsystem"),
        },
        "actor": {"actorType": actor["actor_type"], "actorId": actor["actor_id"]},
        "idempotencyKey": event["idempotency_key"],
        "payload": event["payload"],
        "correlationId": event.get("correlation_id"),
        "causationEventId": event.get("causation_event_id"),
        "schemaVersion": event.get("schema_version", 1),
        "tags": list(event.get("tags", [])),
    }


def envelope(
    trace_id: str,
    trace_seq: int,
    event_type: str,
    payload: Mapping[str, Any],
    **overrides: Any,
) -> dict[str, Any]:
    """A valid fixture-style envelope with sensible defaults."""
    event: dict[str, Any] = {
        "event_id": f"{trace_id}-{trace_seq}-{uuid.uuid4().hex[:8]}",
        "trace_id": trace_id,
        "trace_seq": trace_seq,
        "event_type": event_type,
        "occurred_at": f"2026-01-01T00:00:{trace_seq % 60:02d}Z",
        "source": {"producer_id": "test-producer", "system": "tests", "subsystem": None},
        "actor": {"actor_type": "agent", "actor_id": "agent-7"},
        "idempotency_key": f"{event_type}:{trace_id}:{trace_seq}",
        "payload": dict(payload),
        "correlation_id": None,
        "causation_event_id": None,
        "schema_version": 1,
        "tags": [],
    }
    event.update(overrides)
    return event


def started(trace_id: str, **overrides: Any) -> dict[str, Any]:
    payload = {
        "workflow": "renewal_discount",
        "title": f"Trace {trace_id}",
        "primary_entity": {"entity_type": "account", "entity_id": "acct-1", "system": "crm"},
    }
    return envelope(trace_id, 0, "TraceStarted", payload, **overrides)


def input_observed(trace_id: str, seq: int, **overrides: Any) -> dict[str, Any]:
    payload = {
        "input_id": f"input:{trace_id}:{seq}",
        "source": {"system": "crm", "object_type": "opportunity", "object_id": "opp-1"},
        "facts": [{"key": "discount_pct", "value": {"type": "int", "value": "20"}}],
    }
    return envelope(trace_id, seq, "InputObserved", payload, **overrides)


def finished(trace_id: str, seq: int, outcome: str = "success", **kw: Any) -> dict[str, Any]:
    return envelope(trace_id, seq, "TraceFinished", {"outcome": outcome}, **kw)


APPEND = """
mutation Append($events: [EventInput!]!) {
  appendEvents(events: $events) {
    events { eventId traceId traceSeq eventType logSeq payloadHash recordedAt idempotentReplay }
    errors { code message index field }
  }
}
"""


@dataclass
class GraphQLClient:
    http: httpx.AsyncClient
    token: str
    tenant: str | None = None
    path: str = "/graphql"

    def headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"}
        if self.tenant:
            headers["X-Tenant-ID"] = self.tenant
        return headers

    async def execute(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
    ) -> Any:
        body: dict[str, Any] = {"query": query, "variables": dict(variables or {})}
        if operation_name is not None:
            body["operationName"] = operation_name
        response = await self.http.post(self.path, json=body, headers=self.headers())
        assert response.status_code == 200, response.text
        return response.json()

    async def data(self, query: str, variables: Mapping[str, Any] | None = None) -> Any:
        body = await self.execute(query, variables)
        assert "errors" not in body, body
        return body["data"]

    async def append(self, events: list[Mapping[str, Any]]) -> dict[str, Any]:
        data = await self.data(APPEND, {"events": [to_input(e) for e in events]})
        result: dict[str, Any] = data["appendEvents"]
        return result

    async def append_ok(self, events: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
        result = await self.append(events)
        assert result["errors"] == [], result["errors"]
        stored: list[dict[str, Any]] = result["events"]
        return stored


class CountingPlans:
    """A compiled-plan cache (fast_append / fast_stream) that counts what it served."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.schema = inner.schema
        self.served = 0

    def get(self, query: str | None, operation_name: str | None) -> Any:
        plan = self.inner.get(query, operation_name)
        if plan is not None:
            self.served += 1
        return plan


class NoPlans:
    """Compiled plans switched off: everything takes the generic executor."""

    def get(self, query: str | None, operation_name: str | None) -> None:
        return None


def process_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = os.environ.copy()
    env.pop("PYTEST_CURRENT_TEST", None)  # NiceGUI would think it runs inside a test
    env.update(
        DG_DATABASE_URL=settings.require_database_url,
        DG_REDIS_URL=settings.require_redis_url,
        DG_NAMESPACE=settings.namespace,
        DG_DATA_DIR=str(ROOT / ".dg-test"),
        DG_LOG_LEVEL="warning",
        PYTHONUNBUFFERED="1",
        # As in the `settings` fixture: jobs must start by their doorbell, not a poll.
        DG_WORKER_POLL_DELAY="30",
    )
    env.update(extra)
    return env
