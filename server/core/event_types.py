"""The event types and the payload keys each one must carry (spec/semantics.md §2.2).

`WorkflowReviewRequested` is the eleventh type: operator reviews of a trace
(spec/platform.md §4.1, §7.3). The graph and summary projections ignore it.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from server.core.errors import schema_violation

TRACE_STARTED: Final = "TraceStarted"
INPUT_OBSERVED: Final = "InputObserved"
ENTITY_OBSERVED: Final = "EntityObserved"
POLICY_EVALUATED: Final = "PolicyEvaluated"
EXCEPTION_REQUESTED: Final = "ExceptionRequested"
APPROVAL_RECORDED: Final = "ApprovalRecorded"
PRECEDENT_CITED: Final = "PrecedentCited"
ACTION_PROPOSED: Final = "ActionProposed"
ACTION_COMMITTED: Final = "ActionCommitted"
TRACE_FINISHED: Final = "TraceFinished"
WORKFLOW_REVIEW_REQUESTED: Final = "WorkflowReviewRequested"

CORE_EVENT_TYPES: Final = (
    TRACE_STARTED,
    INPUT_OBSERVED,
    ENTITY_OBSERVED,
    POLICY_EVALUATED,
    EXCEPTION_REQUESTED,
    APPROVAL_RECORDED,
    PRECEDENT_CITED,
    ACTION_PROPOSED,
    ACTION_COMMITTED,
    TRACE_FINISHED,
)
ALL_EVENT_TYPES: Final = (*CORE_EVENT_TYPES, WORKFLOW_REVIEW_REQUESTED)

Kind = Literal["str", "obj", "list"]
Check = tuple[Kind, tuple[str, ...]]

# Checked left to right; the first failure is the one reported.
REQUIRED_KEYS: Final[dict[str, tuple[Check, ...]]] = {
    TRACE_STARTED: (
        ("str", ("workflow",)),
        ("str", ("title",)),
        ("obj", ("primary_entity",)),
        ("str", ("primary_entity", "entity_type")),
        ("str", ("primary_entity", "entity_id")),
    ),
    INPUT_OBSERVED: (
        ("str", ("input_id",)),
        ("obj", ("source",)),
        ("str", ("source", "system")),
        ("str", ("source", "object_type")),
        ("str", ("source", "object_id")),
        ("list", ("facts",)),
    ),
    ENTITY_OBSERVED: (
        ("obj", ("entity",)),
        ("str", ("entity", "entity_type")),
        ("str", ("entity", "entity_id")),
        ("str", ("role",)),
        ("list", ("facts",)),
    ),
    POLICY_EVALUATED: (
        ("obj", ("policy",)),
        ("str", ("policy", "policy_id")),
        ("str", ("policy", "policy_version")),
        ("list", ("inputs",)),
        ("str", ("decision",)),
    ),
    EXCEPTION_REQUESTED: (
        ("str", ("exception_id",)),
        ("obj", ("policy",)),
        ("str", ("policy", "policy_id")),
        ("str", ("policy", "policy_version")),
        ("str", ("reason",)),
    ),
    APPROVAL_RECORDED: (
        ("str", ("approval_id",)),
        ("obj", ("subject",)),
        ("str", ("subject", "subject_type")),
        ("str", ("subject", "subject_id")),
        ("obj", ("approver",)),
        ("str", ("approver", "actor_type")),
        ("str", ("approver", "actor_id")),
        ("str", ("decision",)),
    ),
    PRECEDENT_CITED: (
        ("str", ("cited_trace_id",)),
        ("str", ("reason",)),
    ),
    ACTION_PROPOSED: (
        ("str", ("action_id",)),
        ("str", ("action_type",)),
        ("obj", ("target_entity",)),
        ("str", ("target_entity", "entity_type")),
        ("str", ("target_entity", "entity_id")),
        ("str", ("target_system",)),
        ("list", ("changes",)),
    ),
    ACTION_COMMITTED: (
        ("str", ("action_id",)),
        ("str", ("status",)),
    ),
    TRACE_FINISHED: (("str", ("outcome",)),),
    WORKFLOW_REVIEW_REQUESTED: (
        ("str", ("template_id",)),
        ("str", ("reason",)),
    ),
}

_KIND_WORD: Final[dict[Kind, str]] = {"str": "string", "obj": "object", "list": "list"}


def _passes(kind: Kind, value: Any) -> bool:
    if kind == "str":
        return isinstance(value, str) and value != ""
    if kind == "obj":
        return isinstance(value, dict)
    return isinstance(value, list)


def check_payload_schema(event_type: str, payload: Any) -> None:
    """Step 3 of the append pipeline: known type, dict payload, required keys."""
    checks = REQUIRED_KEYS.get(event_type)
    if checks is None:
        raise schema_violation(f"Unknown event_type '{event_type}'")
    if not isinstance(payload, dict):
        raise schema_violation("Payload must be a dict")
    for kind, path in checks:
        node: Any = payload
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        value = node.get(path[-1]) if isinstance(node, dict) else None
        if not _passes(kind, value):
            parent = ".".join(("$", *path[:-1]))
            raise schema_violation(
                f"Missing or invalid {_KIND_WORD[kind]} for '{parent}.{path[-1]}'"
            )
