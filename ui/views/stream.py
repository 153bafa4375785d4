"""The tenant's live event stream: every new event appears as it is stored."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from ui import theme
from ui.api import ApiError
from ui.page import Page

LATEST = "{ projectionHealth { lastLogSeq } }"
LIVE = """subscription($after: Long!) { events(afterLogSeq: $after) {
  logSeq traceId traceSeq eventId eventType occurredAt actor { actorId actorType } payload } }"""
BACKLOG = 25
SHOWN = 200


def excerpt(payload: dict[str, Any]) -> str:
    for key in ("decision", "outcome", "action_id", "exception_id", "title", "reason"):
        value = payload.get(key)
        if isinstance(value, str):
            return f"{key}: {value}"
    return ""


async def render(page: Page) -> None:
    with theme.card("Live event stream", classes="w-full"):
        with ui.row().classes("items-center gap-3"):
            theme.chip("live", "good", "bolt")
            counter = (
                ui.label("waiting for events…").classes("text-sm dg-muted").mark("stream-count")
            )
        rows = ui.column().classes("w-full gap-0").mark("stream")
    try:
        last = (await page.api.query(LATEST))["projectionHealth"]["lastLogSeq"]
    except ApiError as error:
        with rows:
            theme.chip("unavailable", "alert")
            ui.label(error.message)
        return
    seen = {"position": max(0, last - BACKLOG), "count": 0}

    def on_event(data: dict[str, Any]) -> None:
        event = data["events"]
        seen["position"] = event["logSeq"]
        seen["count"] += 1
        counter.text = f"{seen['count']} event(s) · last position {event['logSeq']}"
        with rows:
            row = ui.row().classes("w-full dg-row items-center gap-3 no-wrap")
            row.mark(f"stream-{event['logSeq']}")
            with row:
                ui.label(f"seq {event['logSeq']}").classes("dg-mono dg-muted w-20")
                theme.chip(event["eventType"], theme.tone_of(event["eventType"]))
                link = ui.link(
                    f"{event['traceId']}#{event['traceSeq']}",
                    page.link(view="traces", trace_id=event["traceId"]),
                )
                link.classes("dg-mono text-sm")
                ui.label(excerpt(event["payload"])).classes("text-sm truncate flex-1")
                ui.label(event["occurredAt"]).classes("text-xs dg-muted")
        row.move(rows, target_index=0)  # newest first
        while len(rows.default_slot.children) > SHOWN:
            rows.remove(rows.default_slot.children[-1])

    page.live(LIVE, lambda: {"after": seen["position"]}, on_event)
