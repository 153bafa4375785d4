"""Schemathesis strategies for our custom scalars (loaded through SCHEMATHESIS_HOOKS)."""

from __future__ import annotations

import graphql
import schemathesis
from hypothesis import strategies as st
from hypothesis_graphql import nodes

_leaf = st.one_of(
    st.integers(-1000, 1000).map(nodes.Int),
    st.text(max_size=20).map(nodes.String),
    st.booleans().map(nodes.Boolean),
)


def _object(pairs: dict[str, graphql.ValueNode]) -> graphql.ObjectValueNode:
    fields = [
        graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=v) for k, v in pairs.items()
    ]
    return nodes.Object(fields)


schemathesis.graphql.scalar(
    "JSON",
    st.dictionaries(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), _leaf, max_size=5).map(_object),
)
schemathesis.graphql.scalar("Long", st.integers(-(2**63), 2**63 - 1).map(nodes.Int))
