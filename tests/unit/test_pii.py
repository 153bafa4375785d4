"""The PII guard's one-pass pre-scan finds a needle exactly when one of them is there."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from server.core.pii import _ANY_NEEDLE, _LOWERED, trie_pattern

NEEDLES = [needle for _, needle in _LOWERED]
ALPHABET = "".join(sorted(set("".join(NEEDLES)))) + "xyz "


@given(st.lists(st.one_of(st.text(ALPHABET, max_size=12), st.sampled_from(NEEDLES)), max_size=6))
def test_the_pre_scan_agrees_with_plain_substring_tests(parts: list[str]) -> None:
    text = "".join(parts)
    assert bool(_ANY_NEEDLE.search(text)) == any(needle in text for needle in NEEDLES)


@given(st.lists(st.text("abc-_", min_size=1, max_size=5), min_size=1, max_size=8), st.text("abc-_"))
def test_a_trie_pattern_matches_any_of_its_words(words: list[str], text: str) -> None:
    import re

    assert bool(re.search(trie_pattern(words), text)) == any(w in text for w in words)
