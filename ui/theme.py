"""The console's look: design tokens, one stylesheet, and the few building blocks every
screen uses (cards, chips, metric tiles, panel states)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from nicegui import ui

# Design tokens. Slate ink on a cool paper background, deep teal for "good / act",
# amber for "attention", crimson for "alert"; monospace for ids and digests.
INK: Final = "#0f1b2d"
INK_SOFT: Final = "#475569"
PAPER: Final = "#f4f6f8"
SURFACE: Final = "#ffffff"
LINE: Final = "#dfe4ea"
TEAL: Final = "#0f766e"
TEAL_SOFT: Final = "#ccfbf1"
AMBER: Final = "#b45309"
AMBER_SOFT: Final = "#fef3c7"
CRIMSON: Final = "#b91c1c"
CRIMSON_SOFT: Final = "#fee2e2"
SKY: Final = "#1d4ed8"
SKY_SOFT: Final = "#dbeafe"
RADIUS: Final = "14px"
FONT: Final = "'IBM Plex Sans', Inter, 'Segoe UI', system-ui, sans-serif"
MONO: Final = "'IBM Plex Mono', 'JetBrains Mono', ui-monospace, SFMono-Regular, monospace"

TONES: Final = {
    "good": (TEAL, TEAL_SOFT),
    "warn": (AMBER, AMBER_SOFT),
    "alert": (CRIMSON, CRIMSON_SOFT),
    "info": (SKY, SKY_SOFT),
    "quiet": (INK_SOFT, "#eef2f6"),
}

# Words that carry a tone wherever they appear (statuses, outcomes, event types).
_GOOD: Final = {
    "success",
    "allow",
    "approved",
    "completed",
    "ready",
    "tracefinished",
    "approvalrecorded",
    "actioncommitted",
    "committed",
    "ok",
    "finished",
    "true",
}
_WARN: Final = {
    "running",
    "pending",
    "requested",
    "in_review",
    "changes_requested",
    "queued",
    "policyevaluated",
    "catching_up",
    "deadline_risk",
    "open",
    "stale",
    "high",
}
_ALERT: Final = {
    "failed",
    "failure",
    "rejected",
    "deny",
    "denied",
    "exceptionrequested",
    "cancelled",
    "escalated",
    "overdue",
    "failing",
    "overridden",
    "urgent",
    "false",
    "abandoned",
}

CSS: Final = f"""
:root {{ --dg-ink: {INK}; --dg-paper: {PAPER}; --dg-teal: {TEAL}; --dg-amber: {AMBER};
        --dg-crimson: {CRIMSON}; --dg-line: {LINE}; }}
body {{ background: linear-gradient(180deg, #eef2f6 0%, {PAPER} 240px); color: {INK};
        font-family: {FONT}; }}
.dg-mono {{ font-family: {MONO}; font-size: 0.82rem; }}
.dg-card {{ background: {SURFACE}; border: 1px solid {LINE}; border-radius: {RADIUS};
            box-shadow: 0 1px 2px rgba(15, 27, 45, 0.04), 0 8px 24px rgba(15, 27, 45, 0.04);
            padding: 18px 20px; }}
.dg-card-title {{ font-size: 0.78rem; letter-spacing: 0.08em; text-transform: uppercase;
                  color: {INK_SOFT}; font-weight: 600; }}
.dg-metric {{ font-size: 1.9rem; font-weight: 650; line-height: 1.1; }}
.dg-muted {{ color: {INK_SOFT}; }}
.dg-chip {{ border-radius: 999px; padding: 2px 10px; font-size: 0.74rem; font-weight: 600;
            display: inline-flex; align-items: center; gap: 4px; white-space: nowrap; }}
.dg-row {{ border-bottom: 1px solid {LINE}; padding: 10px 4px; }}
.dg-row:hover {{ background: #f8fafc; }}
.dg-selected {{ background: {TEAL_SOFT}55; border-left: 3px solid {TEAL}; }}
.dg-nav a, .dg-nav .q-btn {{ justify-content: flex-start; }}
.dg-header {{ background: {INK}; color: white; }}
.dg-state {{ padding: 22px; text-align: center; color: {INK_SOFT}; }}
.dg-payload pre {{ max-height: 320px; overflow: auto; }}
"""


def install() -> None:
    """Add the stylesheet once per page."""
    ui.add_css(CSS)
    ui.colors(
        primary=TEAL,
        secondary=INK,
        accent=AMBER,
        positive=TEAL,
        negative=CRIMSON,
        warning=AMBER,
        info=SKY,
    )


def tone_of(value: Any) -> str:
    text = str(value).lower().replace(" ", "_")
    if text in _ALERT:
        return "alert"
    if text in _WARN:
        return "warn"
    if text in _GOOD:
        return "good"
    return "quiet"


def chip_html(text: str, tone: str | None = None, icon: str | None = None) -> str:
    colour, background = TONES[tone or tone_of(text)]
    glyph = f'<span class="material-icons" style="font-size:14px">{icon}</span>' if icon else ""
    return (
        f'<span class="dg-chip" style="color:{colour};background:{background}">'
        f"{glyph}{_escape(text)}</span>"
    )


def chip(text: str, tone: str | None = None, icon: str | None = None) -> ui.html:
    """A status pill; its tone follows the word unless given."""
    return ui.html(chip_html(text, tone, icon)).classes("shrink-0")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def card(title: str | None = None, *, classes: str = "w-full") -> ui.column:
    """A surface with an optional title; `classes` sets its width (full by default)."""
    box = ui.column().classes(f"dg-card gap-3 {classes}")
    if title:
        with box:
            ui.label(title).classes("dg-card-title")
    return box


def metric(title: str, value: Any, hint: str = "", tone: str = "quiet") -> ui.label:
    colour = TONES[tone][0] if tone != "quiet" else INK
    with ui.column().classes("dg-card gap-1 min-w-[150px] flex-1"):
        ui.label(title).classes("dg-card-title")
        label = ui.label(str(value)).classes("dg-metric").style(f"color:{colour}")
        if hint:
            ui.label(hint).classes("text-xs dg-muted")
    return label


def mono(text: str) -> ui.label:
    return ui.label(text).classes("dg-mono")


def short(digest: str | None, length: int = 18) -> str:
    if not digest:
        return "—"
    return digest if len(digest) <= length else digest[:length] + "…"


class PanelState:
    """A panel's explicit loading, empty, error and stale states around its content."""

    def __init__(self, empty: str = "Nothing here yet.") -> None:
        self._empty = empty
        self.banner = ui.row().classes("w-full")
        self.body = ui.column().classes("w-full gap-0")
        self.loading()

    def loading(self) -> None:
        self.body.clear()
        with self.body, ui.row().classes("dg-state w-full justify-center items-center gap-2"):
            ui.spinner(size="sm")
            ui.label("Loading…")

    def error(self, message: str) -> None:
        self.body.clear()
        with self.body, ui.column().classes("dg-state w-full items-center"):
            chip("unavailable", "alert", "error_outline")
            ui.label(message).classes("text-sm")

    def show(self, render: Callable[[], Any], count: int, empty: str | None = None) -> None:
        self.body.clear()
        with self.body:
            if count == 0:
                with ui.column().classes("dg-state w-full items-center"):
                    ui.label(empty or self._empty)
            else:
                render()

    def stale(self, behind: int) -> None:
        """Say so when the projection behind this panel has not caught up yet."""
        self.banner.clear()
        if behind > 0:
            with self.banner:
                chip(f"stale: {behind} event(s) not projected yet", "warn", "schedule")
