"""Overlapping bulk loads raise Python's collection threshold once and restore it once."""

from __future__ import annotations

import gc

import pytest

from server.store.bulk_rebuild import _fewer_collections

pytestmark = pytest.mark.anyio


async def test_overlapping_loads_restore_the_threshold_they_found() -> None:
    found = gc.get_threshold()
    first, second = _fewer_collections(), _fewer_collections()
    await first.__aenter__()
    await second.__aenter__()
    assert gc.get_threshold()[0] == 70_000
    await first.__aexit__(None, None, None)  # the first out is not the last out
    assert gc.get_threshold()[0] == 70_000
    await second.__aexit__(None, None, None)
    assert gc.get_threshold() == found
