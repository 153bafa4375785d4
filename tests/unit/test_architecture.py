"""The shape the style guide asks for, checked: a core of small modules."""

from __future__ import annotations

from pathlib import Path

from tests.support import ROOT


def test_no_core_module_grows_past_400_lines() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for path in Path(ROOT / "server" / "core").rglob("*.py")
    }
    assert sizes and {path: n for path, n in sizes.items() if n > 400} == {}
