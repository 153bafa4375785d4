"""The request-body parser: msgspec first, the stdlib for what msgspec refuses. Whatever
the body, the values are the stdlib's, so validation sees exactly what it always saw."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.graphql.controller import parse_body

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**130), max_value=2**130)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
documents = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=24,
)


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types all the way down (repr tells NaN, -0.0, 1 and True apart)."""
    return repr(a) == repr(b)


@given(documents, st.booleans(), st.booleans())
def test_any_document_parses_to_the_stdlib_values(
    document: Any, ensure_ascii: bool, as_bytes: bool
) -> None:
    text = json.dumps(document, ensure_ascii=ensure_ascii)
    body: str | bytes = text.encode("utf-8", "surrogatepass") if as_bytes else text
    assert same(parse_body(body), json.loads(body))


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": NaN, "b": Infinity, "c": -Infinity}',  # Python's extensions of JSON
        b'{"a": 1E400}',  # overflows to inf in the stdlib, refused by msgspec
        b'"\\ud800"',  # a lone surrogate
        b'\xef\xbb\xbf{"a": 1}',  # a byte order mark
        b'{"a": 1, "a": 2}',  # the last duplicate wins
        b'{"a": 123456789012345678901234567890}',
        b'{"a": -0.0, "b": 0.1e1}',
    ],
)
def test_what_msgspec_refuses_gets_the_stdlib_reading(body: bytes) -> None:
    assert same(parse_body(body), json.loads(body))


@pytest.mark.parametrize("body", [b"{", b'{"a": }', b"\xff", b""])
def test_malformed_json_raises_the_stdlib_error(body: bytes) -> None:
    with pytest.raises(ValueError) as stdlib:  # noqa: PT011 - whichever error json raises
        json.loads(body)
    with pytest.raises(stdlib.type, match=re.escape(str(stdlib.value))):
        parse_body(body)
