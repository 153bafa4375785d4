"""GraphQL over HTTP: appends with safe retries, typed reads, reviews, and followers.

    async with DecisionGraphClient("http://127.0.0.1:8000", token, tenant="acme") as dg:
        trace = Trace("trace-1", Source("agent", "crm"), Actor.agent("rev-bot"))
        await dg.append([trace.started(...), trace.input_observed(...)])
        async for event in dg.follow_trace("trace-1"):
            ...

Retries resend the *same request body*: every event keeps its idempotency key, so an append
whose response was lost (the server committed, the connection died) comes back as an
idempotent replay of the stored events, never as a second copy.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

import httpx

from decisiongraph.sdk.events import Actor, Event, Source, Trace
from decisiongraph.sdk.follow import follow
from decisiongraph.sdk.models import (
    AppendedEvent,
    Precedent,
    ProjectionHealth,
    Replay,
    StoredEvent,
    TraceInfo,
    Workflow,
    WorkflowChange,
)

APPEND: Final = f"""
mutation Append($events: [EventInput!]!) {{
  appendEvents(events: $events) {{
    events {{ {AppendedEvent.selection()} }}
    errors {{ code message index field }}
  }}
}}
"""
TRACE: Final = f"query($t: String!) {{ trace(traceId: $t) {{ {TraceInfo.selection()} }} }}"
TRACE_EVENTS: Final = f"""query($t: String!, $after: Int!, $n: Int!) {{ trace(traceId: $t) {{
  events(afterTraceSeq: $after, first: $n) {{ edges {{ node {{ {StoredEvent.selection()} }} }}
  pageInfo {{ hasNextPage }} }} }} }}"""
EVENTS: Final = f"""query($after: Long!, $n: Int!, $type: String, $t: String) {{
  events(afterLogSeq: $after, first: $n, eventType: $type, traceId: $t) {{
  edges {{ node {{ {StoredEvent.selection()} }} }} pageInfo {{ hasNextPage }} }} }}"""
HEALTH: Final = (
    f"query($n: Long) {{ projectionHealth(atLeast: $n) {{ {ProjectionHealth.selection()} }} }}"
)
PRECEDENTS: Final = f"""query($policy: String, $version: String, $et: String, $eid: String,
  $outcome: String, $n: Int!, $atLeast: Long) {{ precedents(policyId: $policy,
  policyVersion: $version, entityType: $et, entityId: $eid, outcome: $outcome, first: $n,
  atLeast: $atLeast) {{ {Precedent.selection()} }} }}"""
WORKFLOWS: Final = f"""query($open: Boolean!, $t: String, $role: String, $n: Int!,
  $atLeast: Long) {{ workflows(onlyOpen: $open, traceId: $t, assignedRole: $role, first: $n,
  atLeast: $atLeast) {{
  edges {{ node {{ {Workflow.selection()} }} }} }} }}"""
WORKFLOW: Final = f"""query($id: String!, $atLeast: Long) {{
  workflow(workflowId: $id, atLeast: $atLeast) {{ {Workflow.selection()} }} }}"""
REVIEW: Final = f"""mutation($id: String!, $d: ReviewDecision!, $why: String!, $ev: [JSON!],
  $req: String) {{ reviewWorkflow(workflowId: $id, decision: $d, rationale: $why,
  evidence: $ev, requestId: $req) {{ workflow {{ {Workflow.selection()} }}
  appendedEventId errors {{ code message field }} }} }}"""
REQUEST_REPLAY: Final = f"""mutation($p: ReplayProjection!, $m: ReplayMode!, $why: String!) {{
  requestReplay(projection: $p, mode: $m, reason: $why) {{ replay {{ {Replay.selection()} }}
  errors {{ code message }} }} }}"""
REPLAY: Final = f"query($id: String!) {{ replay(replayId: $id) {{ {Replay.selection()} }} }}"
FOLLOW_EVENTS: Final = (
    f"subscription($after: Long!) {{ events(afterLogSeq: $after) {{ {StoredEvent.selection()} }} }}"
)
FOLLOW_TRACE: Final = f"""subscription($t: String!, $after: Int!) {{
  traceEvents(traceId: $t, afterTraceSeq: $after) {{ {StoredEvent.selection()} }} }}"""
FOLLOW_WORKFLOWS: Final = (
    f"subscription($after: Long) {{ workflowChanged(afterSeq: $after) "
    f"{{ {WorkflowChange.selection()} }} }}"
)

# Codes worth a retry: the server could not answer now, and the same request may succeed.
RETRYABLE_CODES: Final = frozenset({"DG_ERR_STORAGE", "DG_ERR_RATE_LIMITED"})
RETRYABLE_STATUS: Final = frozenset({429, 502, 503, 504})


class GraphQLError(Exception):
    """A query's `errors`, or a mutation payload's, with the first error's code."""

    def __init__(self, errors: Sequence[Mapping[str, Any]]) -> None:
        self.errors = list(errors)
        first = self.errors[0] if self.errors else {}
        self.code: str | None = first.get("code") or (first.get("extensions") or {}).get("code")
        self.index: int | None = first.get("index")
        super().__init__(f"{self.code}: {first.get('message', 'unknown error')}")


class RetriesExhausted(Exception):
    """Every attempt failed with a transient error; the last one is the `__cause__`.
    Whether the last attempt was committed is unknown, and a later `append` of the same
    events settles it safely (idempotent replay or first write)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 6
    first_delay: float = 0.1
    max_delay: float = 5.0
    # A rate-limited request waits for the server's Retry-After, up to this long.
    max_retry_after: float = 60.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Exponential backoff with full jitter (spreads a fleet's retries after an outage);
        at least the server's `Retry-After` when it sent one, so a rate-limited client does
        not spend its attempts inside the window that refused it."""
        jittered = random.uniform(0, min(self.max_delay, self.first_delay * 2**attempt))
        if retry_after is None:
            return jittered
        return min(self.max_retry_after, retry_after) + jittered


class _Transient(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None


class DecisionGraphClient:
    """One API key, one tenant (or `tenant=None` for a single-tenant key)."""

    def __init__(
        self,
        url: str,
        token: str,
        tenant: str | None = None,
        *,
        http: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.tenant = tenant
        self.retry = retry or RetryPolicy()
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(timeout=timeout)

    async def __aenter__(self) -> DecisionGraphClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    @property
    def endpoint(self) -> str:
        return self.url if self.url.endswith("/graphql") else self.url + "/graphql"

    def headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"}
        if self.tenant:
            headers["X-Tenant-ID"] = self.tenant
        return headers

    # -- transport -------------------------------------------------------------------------

    async def execute(self, query: str, variables: Mapping[str, Any] | None = None) -> Any:
        """The `data` of a query or mutation, sent once; GraphQL errors raise GraphQLError."""
        body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
        return await self._post(body)

    async def _post(self, body: bytes) -> Any:
        headers = {**self.headers(), "Content-Type": "application/json"}
        response = await self.http.post(self.endpoint, content=body, headers=headers)
        if response.status_code in RETRYABLE_STATUS:
            raise _Transient(f"HTTP {response.status_code}", _retry_after(response))
        try:
            data = response.json()
        except ValueError:
            response.raise_for_status()
            raise
        if data.get("errors"):
            raise GraphQLError(data["errors"])
        response.raise_for_status()
        return data["data"]

    async def _post_retrying(self, body: bytes, field: str) -> Any:
        """Send `body` until it gets an answer that is not transient; the same bytes each time."""
        last: Exception | None = None
        retry_after: float | None = None
        for attempt in range(self.retry.attempts):
            if attempt:
                await asyncio.sleep(self.retry.delay(attempt - 1, retry_after))
            retry_after = None
            try:
                payload = (await self._post(body))[field]
            except _Transient as error:
                last, retry_after = error, error.retry_after
                continue
            except httpx.TransportError as error:
                last = error
                continue
            except GraphQLError as error:
                if error.code not in RETRYABLE_CODES:
                    raise
                last = error
                continue
            errors = payload.get("errors") or []
            if errors and errors[0].get("code") in RETRYABLE_CODES:
                last = GraphQLError(errors)
                continue
            return payload
        raise RetriesExhausted(f"{field}: {self.retry.attempts} attempts failed") from last

    async def mutate(
        self, query: str, field: str, variables: Mapping[str, Any] | None = None
    ) -> Any:
        """A mutation's payload, sent once; its `errors` raise GraphQLError."""
        payload = (await self.execute(query, variables))[field]
        if payload.get("errors"):
            raise GraphQLError(payload["errors"])
        return payload

    # -- ingest ----------------------------------------------------------------------------

    async def append(self, events: Sequence[Event | Mapping[str, Any]]) -> list[AppendedEvent]:
        """Append one batch atomically, retrying transient failures with the same keys.

        Raises GraphQLError (with `.index` of the failing event) when the batch is refused;
        nothing of a refused batch is written."""
        inputs = [e.to_input() if isinstance(e, Event) else dict(e) for e in events]
        body = json.dumps({"query": APPEND, "variables": {"events": inputs}}).encode()
        payload = await self._post_retrying(body, "appendEvents")
        if payload.get("errors"):
            raise GraphQLError(payload["errors"])
        return [AppendedEvent.from_json(e) for e in payload["events"]]

    async def append_many(
        self, events: Sequence[Event | Mapping[str, Any]], *, batch_size: int = 500
    ) -> list[AppendedEvent]:
        """Append in order, `batch_size` events per request (each batch atomic). On a refusal
        the batches before it stay written; the error's `.index` is relative to the whole
        sequence, so the caller can fix that event and append again from it."""
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        stored: list[AppendedEvent] = []
        for start in range(0, len(events), batch_size):
            try:
                stored += await self.append(events[start : start + batch_size])
            except GraphQLError as error:
                if error.index is not None:
                    error.index += start
                raise
        return stored

    async def resume_trace(self, trace_id: str, source: Source, actor: Actor) -> Trace:
        """A builder that continues a trace already in the log (from its next trace_seq)."""
        info = await self.trace(trace_id)
        if info is None:
            return Trace(trace_id, source, actor)
        return Trace(trace_id, source, actor, next_seq=info.event_count)

    # -- reads -----------------------------------------------------------------------------

    async def trace(self, trace_id: str) -> TraceInfo | None:
        data = (await self.execute(TRACE, {"t": trace_id}))["trace"]
        return None if data is None else TraceInfo.from_json(data)

    async def trace_events(self, trace_id: str, after_trace_seq: int = -1) -> list[StoredEvent]:
        """All of a trace's events after a position (pages through the connection)."""
        out: list[StoredEvent] = []
        while True:
            variables = {"t": trace_id, "after": after_trace_seq, "n": 500}
            data = (await self.execute(TRACE_EVENTS, variables))["trace"]
            if data is None:
                return out
            page = [StoredEvent.from_json(e["node"]) for e in data["events"]["edges"]]
            out += page
            if not page or not data["events"]["pageInfo"]["hasNextPage"]:
                return out
            after_trace_seq = page[-1].trace_seq

    async def events(
        self,
        after_log_seq: int = 0,
        *,
        first: int = 100,
        event_type: str | None = None,
        trace_id: str | None = None,
    ) -> list[StoredEvent]:
        variables = {"after": after_log_seq, "n": first, "type": event_type, "t": trace_id}
        data = (await self.execute(EVENTS, variables))["events"]
        return [StoredEvent.from_json(e["node"]) for e in data["edges"]]

    async def projection_health(self, at_least: int | None = None) -> ProjectionHealth:
        data = await self.execute(HEALTH, {"n": at_least})
        return ProjectionHealth.from_json(data["projectionHealth"])

    async def precedents(
        self,
        *,
        policy_id: str | None = None,
        policy_version: str | None = None,
        entity_type: str | None = None,
        entity_id: str | None = None,
        outcome: str | None = None,
        first: int = 10,
        at_least: int | None = None,
    ) -> list[Precedent]:
        variables = {
            "policy": policy_id,
            "version": policy_version,
            "et": entity_type,
            "eid": entity_id,
            "outcome": outcome,
            "n": first,
            "atLeast": at_least,
        }
        data = await self.execute(PRECEDENTS, variables)
        return [Precedent.from_json(p) for p in data["precedents"]]

    async def workflows(
        self,
        *,
        only_open: bool = False,
        trace_id: str | None = None,
        assigned_role: str | None = None,
        first: int = 50,
        at_least: int | None = None,
    ) -> list[Workflow]:
        """The review inbox, in inbox order (overdue first, then priority, then oldest)."""
        variables = {
            "open": only_open,
            "t": trace_id,
            "role": assigned_role,
            "n": first,
            "atLeast": at_least,
        }
        data = await self.execute(WORKFLOWS, variables)
        return [Workflow.from_json(e["node"]) for e in data["workflows"]["edges"]]

    async def workflow(self, workflow_id: str, at_least: int | None = None) -> Workflow:
        data = await self.execute(WORKFLOW, {"id": workflow_id, "atLeast": at_least})
        return Workflow.from_json(data["workflow"])

    # -- actions ---------------------------------------------------------------------------

    async def review(
        self,
        workflow_id: str,
        decision: str,
        rationale: str,
        *,
        evidence: Sequence[Mapping[str, Any]] = (),
        request_id: str | None = None,
    ) -> tuple[Workflow, str | None]:
        """Approve or reject (`decision` APPROVE or REJECT); with `request_id` a retry is
        idempotent, and it is retried on transient failures. Returns the workflow and the
        id of the ApprovalRecorded event appended."""
        variables = {
            "id": workflow_id,
            "d": decision.upper(),
            "why": rationale,
            "ev": [dict(e) for e in evidence] or None,
            "req": request_id,
        }
        body = json.dumps({"query": REVIEW, "variables": variables}).encode()
        if request_id is None:
            payload = (await self._post(body))["reviewWorkflow"]
        else:
            payload = await self._post_retrying(body, "reviewWorkflow")
        if payload.get("errors"):
            raise GraphQLError(payload["errors"])
        return Workflow.from_json(payload["workflow"]), payload.get("appendedEventId")

    async def request_replay(self, projection: str, mode: str, reason: str) -> Replay:
        variables = {"p": projection.upper(), "m": mode.upper(), "why": reason}
        payload = await self.mutate(REQUEST_REPLAY, "requestReplay", variables)
        return Replay.from_json(payload["replay"])

    async def replay(self, replay_id: str) -> Replay:
        return Replay.from_json((await self.execute(REPLAY, {"id": replay_id}))["replay"])

    async def wait_replay(self, replay_id: str) -> Replay:
        """Poll until the replay ends (bound it with `asyncio.timeout`; the `replay`
        subscription gives live progress instead)."""
        while True:
            replay = await self.replay(replay_id)
            if replay.status in {"COMPLETED", "FAILED", "CANCELLED"}:
                return replay
            await asyncio.sleep(0.2)

    # -- live ------------------------------------------------------------------------------

    def follow_events(self, after_log_seq: int = 0) -> AsyncGenerator[StoredEvent, None]:
        """The tenant's events after a position, then live; reconnects and resumes from the
        last event delivered, so nothing is missed or repeated across outages."""
        return follow(
            self.url,
            self.token,
            self.tenant,
            FOLLOW_EVENTS,
            "events",
            StoredEvent.from_json,
            lambda after: {"after": after},
            lambda event: event.log_seq,
            after_log_seq,
        )

    def follow_trace(
        self, trace_id: str, after_trace_seq: int = -1
    ) -> AsyncGenerator[StoredEvent, None]:
        """A trace's events, resuming across outages; ends after TraceFinished."""
        return follow(
            self.url,
            self.token,
            self.tenant,
            FOLLOW_TRACE,
            "traceEvents",
            StoredEvent.from_json,
            lambda after: {"t": trace_id, "after": after},
            lambda event: event.trace_seq,
            after_trace_seq,
        )

    def follow_workflows(
        self, after_seq: int | None = None
    ) -> AsyncGenerator[WorkflowChange, None]:
        """Workflow changes (from now, or after `after_seq`), resuming across outages."""
        return follow(
            self.url,
            self.token,
            self.tenant,
            FOLLOW_WORKFLOWS,
            "workflowChanged",
            WorkflowChange.from_json,
            lambda after: {"after": after},
            lambda change: change.seq,
            after_seq,
        )
