"""The payload keys spec §6's projections read, and a decoder that builds only those.

A whole-log REBUILD or VERIFY decodes every payload of the log, and most of a payload
(an input's facts, a source reference) is never read by the context graph, the trace
summary or the precedent index. Decoding into this TypedDict, msgspec skips the other
keys without building them: the same dict for every key the projections look at, a
fraction of the objects. Keep it in step with graph.py, trace_summary.py and
precedent.py (tests/unit/test_projected_payload.py reads their payload lookups).
"""

from __future__ import annotations

from typing import Any, Final, TypedDict, cast

import msgspec


class ProjectedPayload(TypedDict, total=False):
    workflow: Any
    title: Any
    outcome: Any
    primary_entity: Any
    input_id: Any
    entity: Any
    policy: Any
    exception_id: Any
    approver: Any
    subject: Any
    cited_trace_id: Any
    action_id: Any
    target_entity: Any


_decoder: Final = msgspec.json.Decoder(ProjectedPayload)


def decode_projected(text: bytes) -> dict[str, Any] | None:
    """The projected keys of a JSON object (duplicates: the last wins, as a full decode
    has it); None when the text is not an object, which a full decode must handle."""
    try:
        return cast(dict[str, Any], _decoder.decode(text))  # msgspec builds a plain dict
    except msgspec.ValidationError:
        return None
