"""The Python SDK: typed event builders, a GraphQL client and resumable subscriptions.

It talks to DecisionGraph only through the public GraphQL API (HTTP and websockets), so it
works against any deployment, and in tests against an in-process app via httpx's ASGI
transport. See docs/sdk.md.
"""

from decisiongraph.sdk.client import (
    DecisionGraphClient,
    GraphQLError,
    RetriesExhausted,
    RetryPolicy,
)
from decisiongraph.sdk.events import (
    Actor,
    Change,
    Entity,
    Event,
    Fact,
    Policy,
    Source,
    SourceObject,
    Trace,
    evidence,
)
from decisiongraph.sdk.live import LiveConnection, SubscriptionError
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

__all__ = [
    "Actor",
    "AppendedEvent",
    "Change",
    "DecisionGraphClient",
    "Entity",
    "Event",
    "Fact",
    "GraphQLError",
    "LiveConnection",
    "Policy",
    "Precedent",
    "ProjectionHealth",
    "Replay",
    "RetriesExhausted",
    "RetryPolicy",
    "Source",
    "SourceObject",
    "StoredEvent",
    "SubscriptionError",
    "Trace",
    "TraceInfo",
    "Workflow",
    "WorkflowChange",
    "evidence",
]
