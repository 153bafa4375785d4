"""schema.graphql is the checked-in source of truth; it must equal what the code builds."""

from __future__ import annotations

from server.graphql.export_schema import sdl
from tests.support import ROOT


def test_schema_graphql_is_in_sync_with_the_code() -> None:
    checked_in = (ROOT / "schema.graphql").read_text()
    assert checked_in == sdl(), "schema.graphql is stale: run `make schema` and commit it"


def test_fixed_operation_names_exist() -> None:
    text = sdl()
    for name in ("appendEvents(events: [EventInput!]!)", "trace(traceId: String!)", "scalar Long"):
        assert name in text
