"""Audit bundles: a trace's (or a workflow's) evidence as one self-checking JSON document.

A bundle holds the trace's events exactly as stored (payload, hash, positions), those of
its review trace, every workflow on it with its history and journal, the tenant's
projection digests at export time, and digests of the trace re-projected on its own. Every
number in it that can be recomputed offline is recomputed by `verify_bundle`: payload
hashes from payloads, sequence continuity, the isolated projection digests (with the same
pure projectors the server runs), the workflow state (folding the exported decision events
and journal), and the bundle digest over everything else. The tenant-wide digests are
attestations: they name the state the export was taken from (a VERIFY replay proves
those against the log).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Final

from server.core.canonical_json import digest_json, payload_hash
from server.core.envelope import ActorRef, SourceRef, StoredEvent
from server.core.errors import DecisionGraphError
from server.core.projector import InMemoryProjector
from server.core.workflow import (
    ActionRow,
    JournalEntry,
    WorkflowItem,
    action_dict,
    rebuild_in_memory,
)

EXPORT_VERSION: Final = 2


def event_dict(event: StoredEvent) -> dict[str, Any]:
    return {
        "log_seq": event.log_seq,
        "event_id": event.event_id,
        "trace_id": event.trace_id,
        "trace_seq": event.trace_seq,
        "event_type": event.event_type,
        "occurred_at": event.occurred_at,
        "recorded_at": event.recorded_at,
        "source": {
            "producer_id": event.source.producer_id,
            "system": event.source.system,
            "subsystem": event.source.subsystem,
        },
        "actor": {"actor_type": event.actor.actor_type, "actor_id": event.actor.actor_id},
        "idempotency_key": event.idempotency_key,
        "payload": event.payload,
        "payload_hash": event.payload_hash,
        "correlation_id": event.correlation_id,
        "causation_event_id": event.causation_event_id,
        "schema_version": event.schema_version,
        "tags": list(event.tags),
    }


def event_from_dict(data: Mapping[str, Any]) -> StoredEvent:
    source, actor = data["source"], data["actor"]
    return StoredEvent(
        log_seq=data["log_seq"],
        event_id=data["event_id"],
        trace_id=data["trace_id"],
        trace_seq=data["trace_seq"],
        event_type=data["event_type"],
        occurred_at=data["occurred_at"],
        recorded_at=data["recorded_at"],
        source=SourceRef(source["producer_id"], source["system"], source.get("subsystem")),
        actor=ActorRef(actor["actor_type"], actor["actor_id"]),
        idempotency_key=data["idempotency_key"],
        payload=data["payload"],
        payload_hash=data["payload_hash"],
        correlation_id=data.get("correlation_id"),
        causation_event_id=data.get("causation_event_id"),
        schema_version=data.get("schema_version", 1),
        tags=tuple(data.get("tags", ())),
    )


def journal_dict(entry: JournalEntry) -> dict[str, Any]:
    return {
        "journal_id": entry.journal_id,
        "position": entry.position,
        "kind": entry.kind,
        "workflow_id": entry.workflow_id,
        "actor_id": entry.actor_id,
        "actor_type": entry.actor_type,
        "actor_account_id": entry.actor_account_id,
        "input": entry.input,
        "at": entry.at,
    }


def isolated_digests(
    events: Sequence[StoredEvent], journal: Sequence[JournalEntry]
) -> dict[str, str]:
    """The exported traces projected on their own, by the server's own pure projectors."""
    ordered = sorted(events, key=lambda e: e.log_seq)
    projector = InMemoryProjector()
    projector.apply_all(ordered)
    digests = projector.digests().as_dict()
    digests["workflows"] = rebuild_in_memory(ordered, journal)[1]
    return digests


def bundle_digest(bundle: Mapping[str, Any]) -> str:
    body = {k: v for k, v in bundle.items() if k != "bundle_digest"}
    return "sha256:" + hashlib.sha256(digest_json(body).encode("ascii")).hexdigest()


def build_bundle(
    *,
    tenant_id: str,
    subject_kind: str,
    subject_id: str,
    exported_at: str,
    events: Sequence[StoredEvent],
    workflows: Sequence[WorkflowItem],
    actions: Sequence[tuple[int, ActionRow]],
    notifications: Sequence[Mapping[str, Any]],
    journal: Sequence[JournalEntry],
    tenant_digests: Mapping[str, Any],
) -> dict[str, Any]:
    traces: dict[str, list[dict[str, Any]]] = {}
    for event in sorted(events, key=lambda e: (e.trace_id, e.trace_seq)):
        traces.setdefault(event.trace_id, []).append(event_dict(event))
    bundle: dict[str, Any] = {
        "export_version": EXPORT_VERSION,
        "exported_at": exported_at,
        "tenant_id": tenant_id,
        "subject": {"kind": subject_kind, "id": subject_id},
        "traces": [{"trace_id": t, "events": evs} for t, evs in sorted(traces.items())],
        "workflows": [w.digest_dict() for w in sorted(workflows, key=lambda w: w.workflow_id)],
        "workflow_actions": [{"seq": seq} | action_dict(a) for seq, a in actions],
        "workflow_notifications": list(notifications),
        "journal": [journal_dict(j) for j in journal],
        "projection_digests": dict(tenant_digests),
        "trace_projection": isolated_digests(events, journal),
        "audit_summary": {
            "event_count": len(events),
            "workflow_count": len(workflows),
            "action_count": len(actions),
            "open_workflows": sum(1 for w in workflows if w.is_open),
        },
    }
    bundle["bundle_digest"] = bundle_digest(bundle)
    return bundle


def verify_bundle(bundle: Mapping[str, Any]) -> list[str]:
    """Every problem found; an empty list means the bundle checks out."""
    problems: list[str] = []
    if bundle.get("export_version") != EXPORT_VERSION:
        return [f"unsupported export_version {bundle.get('export_version')!r}"]
    if bundle.get("bundle_digest") != bundle_digest(bundle):
        problems.append("bundle_digest does not match the bundle's content")
    events: list[StoredEvent] = []
    for trace in bundle.get("traces", []):
        previous_log_seq = 0
        for expected_seq, raw in enumerate(trace.get("events", [])):
            event = event_from_dict(raw)
            events.append(event)
            where = f"event {event.event_id} ({event.trace_id}#{event.trace_seq})"
            try:
                actual = payload_hash(event.payload)
            except (DecisionGraphError, UnicodeError) as exc:
                problems.append(f"{where}: payload cannot be hashed ({exc})")
                continue
            if actual != event.payload_hash:
                problems.append(
                    f"{where}: payload hash {event.payload_hash} but the payload hashes to {actual}"
                )
            if event.trace_id != trace.get("trace_id"):
                problems.append(f"{where}: listed under trace {trace.get('trace_id')}")
            if event.trace_seq != expected_seq:
                problems.append(f"{where}: expected trace_seq {expected_seq}")
            if event.log_seq <= previous_log_seq:
                problems.append(f"{where}: log_seq {event.log_seq} out of order")
            previous_log_seq = event.log_seq
    journal = [
        JournalEntry(
            journal_id=j["journal_id"],
            position=j["position"],
            kind=j["kind"],
            workflow_id=j["workflow_id"],
            actor_id=j["actor_id"],
            actor_type=j["actor_type"],
            actor_account_id=j["actor_account_id"],
            input=j["input"],
            at=j["at"],
        )
        for j in bundle.get("journal", [])
    ]
    if problems:
        return problems  # the projections of damaged events prove nothing
    recomputed = isolated_digests(events, journal)
    for name, value in sorted(bundle.get("trace_projection", {}).items()):
        if recomputed.get(name) != value:
            problems.append(
                f"trace projection {name}: exported {value}, recomputed {recomputed.get(name)}"
            )
    folded, _ = rebuild_in_memory(sorted(events, key=lambda e: e.log_seq), journal)
    exported = {w["workflow_id"]: w for w in bundle.get("workflows", [])}
    for workflow_id, item in sorted(folded.items.items()):
        if workflow_id in exported and exported[workflow_id] != item.digest_dict():
            problems.append(f"workflow {workflow_id}: state differs from its events and journal")
    missing = set(exported) - set(folded.items)
    problems += [f"workflow {w}: no event or journal entry creates it" for w in sorted(missing)]
    history = [
        {k: v for k, v in a.items() if k != "seq"} for a in bundle.get("workflow_actions", [])
    ]
    replayed = [action_dict(a) for a in folded.actions if a.workflow_id in exported]
    if history != replayed:
        problems.append("workflow history differs from what its events and journal produce")
    return problems
