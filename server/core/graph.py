"""Context-graph emission (spec/semantics.md §6.2-§6.3): which nodes and edges an event adds.

Rows are first-write-wins, so an emission lists every node it needs in order: the event's
own nodes, then for each edge its `from` and `to` endpoints as placeholders. Writing that
list with insert-or-ignore reproduces the reference's node-then-ensure-endpoint sequence.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any, ClassVar

from server.core.canonical_json import c3_text as _c3
from server.core.envelope import ProjectedEvent
from server.core.event_types import (
    ACTION_COMMITTED,
    ACTION_PROPOSED,
    APPROVAL_RECORDED,
    ENTITY_OBSERVED,
    EXCEPTION_REQUESTED,
    INPUT_OBSERVED,
    POLICY_EVALUATED,
    PRECEDENT_CITED,
    TRACE_STARTED,
)
from server.core.value import Value


class NodeRow(Value, frozen=True):
    DIGEST_ATTRS: ClassVar[bool] = True  # its digest form has an empty "attrs" (spec §6.8)

    node_id: str
    node_type: str
    trace_id: str
    log_seq: int
    created_at: str

    def digest_dict(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "node_type": self.node_type,
            "trace_id": self.trace_id,
            "log_seq": self.log_seq,
            "created_at": self.created_at,
            "attrs": {},
        }

    def fragment(self) -> str:
        # Keys in sorted order, strings by the C escaper: byte-equal to digest_json(...)
        return (
            f'{{"attrs":{{}},"created_at":{_c3(self.created_at)},"log_seq":{self.log_seq},'
            f'"node_id":{_c3(self.node_id)},"node_type":{_c3(self.node_type)},'
            f'"trace_id":{_c3(self.trace_id)}}}'
        )


class EdgeRow(Value, frozen=True):
    DIGEST_ATTRS: ClassVar[bool] = True

    edge_id: str
    edge_type: str
    from_node_id: str
    to_node_id: str
    trace_id: str
    log_seq: int
    created_at: str

    def digest_dict(self) -> dict[str, Any]:
        return {
            "edge_id": self.edge_id,
            "edge_type": self.edge_type,
            "from_node_id": self.from_node_id,
            "to_node_id": self.to_node_id,
            "trace_id": self.trace_id,
            "log_seq": self.log_seq,
            "created_at": self.created_at,
            "attrs": {},
        }

    def fragment(self) -> str:
        return (
            f'{{"attrs":{{}},"created_at":{_c3(self.created_at)},'
            f'"edge_id":{_c3(self.edge_id)},"edge_type":{_c3(self.edge_type)},'
            f'"from_node_id":{_c3(self.from_node_id)},"log_seq":{self.log_seq},'
            f'"to_node_id":{_c3(self.to_node_id)},"trace_id":{_c3(self.trace_id)}}}'
        )


class Emission(Value, frozen=True):
    nodes: list[NodeRow]
    edges: list[EdgeRow]


def node_type_of(node_id: str) -> str:
    """The text before the first ':'; ids without one are of type `unknown`."""
    head, sep, _ = node_id.partition(":")
    return head if sep else "unknown"


def _entity_id(ref: Any) -> str:
    ref = ref if isinstance(ref, dict) else {}
    return f"entity:{ref.get('entity_type') or 'unknown'}:{ref.get('entity_id') or 'unknown'}"


def _policy_id(event: ProjectedEvent) -> str:
    payload = event.payload if isinstance(event.payload, dict) else {}
    policy = payload.get("policy")
    policy = policy if isinstance(policy, dict) else {}
    policy_id = policy.get("policy_id")
    if policy_id is None:
        return f"unknown:{event.event_id}"
    version = policy.get("policy_version")
    return f"policy:{policy_id}:{version}" if version else f"policy:{policy_id}"


class _Emitter:
    """Collects one event's nodes and edges with the event's row attributes."""

    def __init__(self, event: ProjectedEvent) -> None:
        self.event = event
        self.trace_node = f"trace:{event.trace_id}"
        self.nodes: list[NodeRow] = []
        self.edges: list[tuple[str, str, str]] = []

    def node(self, node_id: str, node_type: str) -> str:
        e = self.event
        self.nodes.append(NodeRow(node_id, node_type, e.trace_id, e.log_seq, e.occurred_at))
        return node_id

    def edge(self, edge_type: str, from_id: str, to_id: str) -> None:
        self.edges.append((edge_type, from_id, to_id))

    def placeholder(self, node_id: str) -> NodeRow:
        node_type = node_type_of(node_id)
        trace_id = node_id.partition(":")[2] if node_type == "trace" else self.event.trace_id
        return NodeRow(node_id, node_type, trace_id, self.event.log_seq, self.event.occurred_at)

    def emission(self, written: Container[str]) -> Emission:
        e = self.event
        nodes = self.nodes
        emitted = {node.node_id for node in nodes}
        edges: list[EdgeRow] = []
        for edge_type, from_id, to_id in self.edges:
            # A placeholder behind a node this event emits, or one already written, could
            # never be written (first write wins), so only the missing endpoints get one.
            for endpoint in (from_id, to_id):
                if endpoint not in emitted and endpoint not in written:
                    emitted.add(endpoint)
                    nodes.append(self.placeholder(endpoint))
            edge_id = f"{edge_type}:{from_id}:{to_id}:{e.event_id}"
            edges.append(
                EdgeRow(edge_id, edge_type, from_id, to_id, e.trace_id, e.log_seq, e.occurred_at)
            )
        return Emission(nodes, edges)


def emit(event: ProjectedEvent, written: Container[str] = frozenset()) -> Emission:
    """The nodes (placeholders included, in write order) and edges of one event. Endpoints
    in `written` (nodes the caller knows to exist) need no placeholder: a whole-log
    projection passes its node ids, and so skips a placeholder for almost every edge."""
    out = _Emitter(event)
    payload: dict[str, Any] = event.payload if isinstance(event.payload, dict) else {}
    trace = out.trace_node
    kind = event.event_type
    if kind == TRACE_STARTED:
        out.node(trace, "trace")
        out.node(f"actor:{event.actor.actor_type}:{event.actor.actor_id}", "actor")
        if "primary_entity" in payload:
            entity = out.node(_entity_id(payload["primary_entity"]), "entity")
            out.edge("trace_involves_entity", trace, entity)
    elif kind == INPUT_OBSERVED:
        node = out.node(f"input:{payload.get('input_id') or event.event_id}", "input")
        out.edge("trace_observed_input", trace, node)
    elif kind == ENTITY_OBSERVED:
        node = out.node(_entity_id(payload.get("entity")), "entity")
        out.edge("trace_involves_entity", trace, node)
    elif kind == POLICY_EVALUATED:
        node = out.node(_policy_id(event), "policy")
        out.edge("trace_evaluated_policy", trace, node)
    elif kind == EXCEPTION_REQUESTED:
        node = out.node(f"exception:{payload.get('exception_id') or event.event_id}", "exception")
        out.edge("trace_requested_exception", trace, node)
    elif kind == APPROVAL_RECORDED:
        _emit_approval(out, payload)
    elif kind == PRECEDENT_CITED:
        cited = payload.get("cited_trace_id")
        if cited:
            out.edge("trace_cited_precedent", trace, f"trace:{cited}")
    elif kind == ACTION_PROPOSED:
        action = out.node(f"action:{payload.get('action_id') or event.event_id}", "action")
        out.edge("trace_proposed_action", trace, action)
        target = payload.get("target_entity")
        if isinstance(target, dict) and target:
            out.edge("action_targets_entity", action, _entity_id(target))
    elif kind == ACTION_COMMITTED:
        action_id = payload.get("action_id")
        if action_id:
            out.edge("trace_committed_action", trace, f"action:{action_id}")
    return out.emission(written)


def _emit_approval(out: _Emitter, payload: dict[str, Any]) -> None:
    approver = payload.get("approver")
    approver = approver if isinstance(approver, dict) else {}
    actor = out.node(
        f"actor:{approver.get('actor_type') or 'person'}:{approver.get('actor_id') or 'unknown'}",
        "actor",
    )
    subject = payload.get("subject")
    subject = subject if isinstance(subject, dict) else {}
    if subject.get("subject_type") == "exception" and subject.get("subject_id"):
        out.edge("exception_approved_by", f"exception:{subject['subject_id']}", actor)
