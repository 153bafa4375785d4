"""The three JSON encodings of spec/semantics.md §3 and the payload hash.

C1 (hash input), C2 (stored text) and C3 (digest input) differ in separators and in
whether non-ASCII is escaped; conflating them breaks byte parity with the reference.
This is deliberately NOT RFC 8785: keys sort by code point and integers are unbounded.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable
from json.encoder import encode_basestring_ascii as _ascii_string
from typing import Any, Final

import msgspec

from server.core.errors import FloatFoundError

HASH_PREFIX = "sha256:"

_c1 = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_c2 = json.JSONEncoder(sort_keys=True, ensure_ascii=False)
_c3 = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
_tags = json.JSONEncoder(ensure_ascii=False)


def find_float(value: Any, path: str = "$") -> None:
    """Raise FloatFoundError at the first float, dicts in insertion order, lists by index."""
    if isinstance(value, float):
        raise FloatFoundError(path, value)
    if isinstance(value, dict):
        for key, item in value.items():
            find_float(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            find_float(item, f"{path}[{index}]")


def canonical_json(payload: Any) -> str:
    """C1: sorted keys, no whitespace, raw UTF-8; floats are refused first."""
    text = encode_c1(payload)
    if has_float_token(text):
        find_float(payload)  # raises, with the float's path
    return text


# Python's encoder writes every float with '.', 'e', 'NaN' or 'Infinity' and never an int
# that way, so the number tokens of the text (strings skipped) tell whether the value
# held a float: one scan instead of a recursive walk of the value.
_TOKENS: Final = re.compile(r'"(?:[^"\\]|\\.)*"|-?(?:[0-9][-+0-9.eE]*|Infinity)|NaN')


class _FloatSeen(Exception):
    pass


def _refuse_float(_: str) -> Any:
    raise _FloatSeen


# msgspec parses the text at C speed and hands every float token to the hook (integers of
# any size stay integers); ten times cheaper than the token scan, which remains the exact
# answer for what msgspec will not parse (NaN, Infinity, lone surrogates).
_float_probe: Final = msgspec.json.Decoder(float_hook=_refuse_float)


def has_float_token(text: str) -> bool:
    """Whether JSON text written by Python's encoder contains a float."""
    if not any(marker in text for marker in ".eENI"):
        return False
    try:
        _float_probe.decode(text)
    except _FloatSeen:
        return True
    except (msgspec.DecodeError, UnicodeError):
        return _scan_float_tokens(text)
    return False


def _scan_float_tokens(text: str) -> bool:
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token[0] != '"' and (token[-1] in "Nny" or any(c in token for c in ".eE")):
            return True  # NaN / Infinity / -Infinity end in N, y; a float has . e or E
    return False


# Digits read as 0 and '.', 'e', 'E' as '.', so that one search finds any digit right
# before one of them: every float token in JSON has one (NaN and Infinity are not JSON).
_FLOAT_MARKS: Final = bytes.maketrans(b"123456789eE", b"000000000..")


def _surely_float_free(compact: bytes) -> bool:
    """True only if JSON bytes hold no float; False may be a false alarm (such bytes
    inside a string), which the exact check then settles."""
    return compact.translate(_FLOAT_MARKS).find(b"0.") < 0


def stored_text_matches_hash(stored: bytes, expected: str) -> bool:
    """Whether a stored payload (C2 text, UTF-8) passes the hash check of spec §6.2 step 1
    without being decoded. C2 and C1 differ only in the separators' spaces, so C2 with
    the whitespace outside its strings removed (msgspec's formatter, which copies strings
    and numbers verbatim) is C1. If that hashes to `expected` it is, byte for byte, the
    text that was hashed, so the stored value is the hashed payload. False: it does not,
    or the text is unusual (not strict JSON, a float): the exact check decides."""
    try:
        compact = msgspec.json.format(stored, indent=-1)
    except msgspec.DecodeError:
        return False
    return _is_hashed_c1(compact, expected)


def _is_hashed_c1(compact: bytes, expected: str) -> bool:
    """Whether compact JSON bytes hash to `expected` and hold no float: then they are the
    C1 text that was hashed (equal hashes mean equal bytes), and C1 refuses floats."""
    if HASH_PREFIX + hashlib.sha256(compact).hexdigest() != expected:
        return False
    return _surely_float_free(compact) or not has_float_token(compact.decode("utf-8"))


# One string exactly as C3 writes it (the standard library's C escaper), for fields that
# are never null: a fragment of a graph row calls it seven times.
c3_text: Final[Callable[[str], str]] = _ascii_string


def c3_string(value: str | None) -> str:
    """One string (or null) exactly as C3 writes it."""
    return "null" if value is None else _ascii_string(value)


def encode_c1(payload: Any) -> str:
    """C1 text as is: the caller is responsible for refusing floats."""
    return _c1.encode(payload)


def sha256_hex(text: str) -> str:
    return HASH_PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()


def payload_hash(payload: Any) -> str:
    """`sha256:` + hex SHA-256 of the UTF-8 bytes of C1(payload)."""
    return sha256_hex(canonical_json(payload))


# msgspec writes C1 byte for byte for JSON-decoded values (same escapes, same code-point
# key order, no whitespace) several times faster than the stdlib; anything it would
# write differently either fails to encode or fails to match, and then the exact path
# decides. A match cannot be a false one: equal hashes mean equal bytes.
_sorted_compact: Final = msgspec.json.Encoder(order="sorted")


def payload_hash_mismatch(payload: Any, expected: str) -> str | None:
    """None when C1(payload) hashes to `expected`, else the hash it does have."""
    try:
        quick = _sorted_compact.encode(payload)
    except (TypeError, ValueError, OverflowError):
        quick = b""
    if quick and _is_hashed_c1(quick, expected):
        return None
    actual = payload_hash(payload)  # the definition itself (refuses floats)
    return None if actual == expected else actual


def stored_payload_json(payload: Any) -> str:
    """C2 for payloads: sorted keys, default `, ` and `: ` separators, raw UTF-8."""
    return _c2.encode(payload)


@functools.lru_cache(maxsize=4096)
def stored_tags_json(tags: tuple[str, ...]) -> str:
    """C2 for tags: order kept, not sorted. Producers repeat the same few tag sets."""
    return _tags.encode(list(tags))


def digest_json(document: Any) -> str:
    """C3: sorted keys, no whitespace, non-ASCII escaped as \\uXXXX."""
    return _c3.encode(document)


def is_json_safe(payload: Any) -> str | None:
    """None when `json.dumps` accepts the value, else the encoder's complaint."""
    try:
        json.dumps(payload)
    except (TypeError, ValueError) as exc:
        return str(exc)
    return None
