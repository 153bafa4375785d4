"""The schema: every feature's root fields merged, parser and validation caches on."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from server.graphql.errors import process_errors
from server.graphql.fast_inputs import FastInputExecutionContext
from server.graphql.live.resolvers import LiveSubscription
from server.graphql.precedent.resolvers import PrecedentQuery
from server.graphql.projections.resolvers import ProjectionQuery
from server.graphql.replays.resolvers import ReplayMutation, ReplayQuery
from server.graphql.scalars import SCALAR_MAP
from server.graphql.simulation.resolvers import SimulationMutation, SimulationQuery
from server.graphql.status.resolvers import StatusQuery
from server.graphql.traces.resolvers import TraceMutation, TraceQuery
from server.graphql.workflows.resolvers import (
    WorkflowMutation,
    WorkflowQuery,
    WorkflowSubscription,
)


@strawberry.type
class Query(
    TraceQuery,
    ProjectionQuery,
    PrecedentQuery,
    SimulationQuery,
    ReplayQuery,
    WorkflowQuery,
    StatusQuery,
):
    pass


@strawberry.type
class Mutation(TraceMutation, ReplayMutation, WorkflowMutation, SimulationMutation):
    pass


@strawberry.type
class Subscription(LiveSubscription, WorkflowSubscription):
    pass


class DecisionGraphSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        process_errors(errors, execution_context)


def build_schema() -> DecisionGraphSchema:
    extensions: list[Any] = [
        lambda: ParserCache(maxsize=1024),
        lambda: ValidationCache(maxsize=1024),
    ]
    return DecisionGraphSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
        execution_context_class=FastInputExecutionContext,
    )


schema = build_schema()
