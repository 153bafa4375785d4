"""Trace explorer: a searchable list; the selected trace's timeline with payloads, its
policy / exception / approval / action strip, and live append."""

from __future__ import annotations

import json
from typing import Any

from nicegui import ui

from ui import theme
from ui.api import ApiError
from ui.page import Page

LIST = """query($search: String, $status: String) {
  traces(first: 60, search: $search, status: $status) {
    edges { node { traceId workflow title outcome startedAt finishedAt lastLogSeq } }
    projectedTo } }"""
TRACE = """query($id: String!) { trace(traceId: $id) {
  traceId workflow title outcome startedAt finishedAt finished eventCount lastLogSeq
  primaryEntity { entityType entityId system }
  events(first: 1000) { edges { node { logSeq traceSeq eventId eventType occurredAt
    actor { actorId actorType } payload payloadHash } } } } }"""
LIVE = """subscription($id: String!, $after: Int!) {
  traceEvents(traceId: $id, afterTraceSeq: $after) { logSeq traceSeq eventId eventType
    occurredAt actor { actorId actorType } payload payloadHash } }"""
STRIP_TYPES = (
    "PolicyEvaluated",
    "ExceptionRequested",
    "ApprovalRecorded",
    "ActionProposed",
    "ActionCommitted",
    "TraceFinished",
)


def strip(events: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(stage, state, detail) for the policy → exception → approval → action story."""
    last = {e["eventType"]: e for e in events}
    policy = last.get("PolicyEvaluated")
    exception = last.get("ExceptionRequested")
    approval = last.get("ApprovalRecorded")
    committed = last.get("ActionCommitted")
    proposed = last.get("ActionProposed")
    return [
        (
            "Policy",
            policy["payload"].get("decision", "evaluated") if policy else "not evaluated",
            "{policy_id}@{policy_version}".format(**policy["payload"].get("policy", {}))
            if policy and isinstance(policy["payload"].get("policy"), dict)
            else "",
        ),
        (
            "Exception",
            ("reviewed" if approval else "requested") if exception else "not required",
            exception["payload"].get("exception_id", "") if exception else "",
        ),
        (
            "Approval",
            approval["payload"].get("decision", "recorded")
            if approval
            else ("pending" if exception else "—"),
            approval["payload"].get("approver", {}).get("actor_id", "") if approval else "",
        ),
        (
            "Action",
            "committed" if committed else ("proposed" if proposed else "pending"),
            (committed or proposed or {}).get("payload", {}).get("action_id", ""),
        ),
    ]


async def render(page: Page) -> None:
    with ui.row().classes("w-full gap-4 items-start no-wrap"):
        with ui.column().classes("w-[380px] shrink-0 gap-3"), theme.card("Traces"):
            with ui.row().classes("w-full gap-2 no-wrap"):
                search = ui.input(placeholder="Search title or id").props(
                    "dense outlined clearable"
                )
                search.classes("flex-1").mark("trace-search")
                status = ui.select(
                    {"": "all", "open": "open", "finished": "finished"}, value=""
                ).props("dense outlined")
            listing = theme.PanelState(empty="No traces match.")
        detail = ui.column().classes("flex-1 gap-3 min-w-0")

    async def load_list() -> None:
        listing.loading()
        try:
            data = await page.api.query(
                LIST, {"search": search.value or None, "status": status.value or None}
            )
        except ApiError as error:
            listing.error(error.message)
            return
        rows = [e["node"] for e in data["traces"]["edges"]]

        def draw() -> None:
            for row in rows:
                selected = row["traceId"] == page.trace_id
                with (
                    ui.row()
                    .classes(
                        "w-full dg-row cursor-pointer items-start no-wrap "
                        + ("dg-selected" if selected else "")
                    )
                    .on("click", lambda _, t=row["traceId"]: page.go(trace_id=t, view="traces"))
                    .mark(f"trace-{row['traceId']}")
                ):
                    with ui.column().classes("gap-0 flex-1 min-w-0"):
                        ui.label(row["title"] or row["traceId"]).classes("font-medium truncate")
                        ui.label(f"{row['traceId']} · {row['workflow']}").classes(
                            "text-xs dg-muted dg-mono truncate"
                        )
                    theme.chip(row["outcome"] or "open")

        listing.show(draw, len(rows))

    search.on("keydown.enter", load_list)
    status.on_value_change(load_list)
    await load_list()

    if page.trace_id is None:
        with detail, theme.card():
            ui.label("Select a trace to see its timeline.").classes("dg-muted")
        return
    try:
        trace = (await page.api.query(TRACE, {"id": page.trace_id}))["trace"]
    except ApiError as error:
        with detail, theme.card():
            theme.chip("unavailable", "alert")
            ui.label(error.message)
        return
    if trace is None:
        with detail, theme.card():
            ui.label(f"No trace {page.trace_id} in {page.tenant}.").classes("dg-muted")
        return
    events = [e["node"] for e in trace["events"]["edges"]]
    with detail:
        with theme.card():
            with ui.row().classes("w-full items-center gap-3"):
                ui.label(trace["title"] or trace["traceId"]).classes("text-xl font-semibold")
                theme.chip(trace["outcome"] or ("finished" if trace["finished"] else "open"))
                ui.space()
                ui.button("Graph", icon="hub", on_click=lambda: page.go(view="graph")).props("flat")
                ui.button(
                    "Precedents", icon="compare_arrows", on_click=lambda: page.go(view="precedents")
                ).props("flat")
            entity = trace["primaryEntity"] or {}
            with ui.row().classes("gap-6 text-sm dg-muted"):
                ui.label(f"id {trace['traceId']}").classes("dg-mono")
                ui.label(f"workflow {trace['workflow']}")
                ui.label(f"entity {entity.get('entityType')}:{entity.get('entityId')}")
                count = ui.label(f"{trace['eventCount']} events")
        strip_row = ui.row().classes("w-full gap-3")
        with theme.card("Timeline"):
            timeline = ui.column().classes("w-full gap-0").mark("timeline")

    def draw_strip() -> None:
        strip_row.clear()
        with strip_row:
            for stage, state_text, detail_text in strip(events):
                with ui.column().classes("dg-card gap-1 flex-1 min-w-[160px] py-3"):
                    ui.label(stage).classes("dg-card-title")
                    theme.chip(state_text)
                    if detail_text:
                        ui.label(detail_text).classes("text-xs dg-mono dg-muted truncate")

    def add_event(event: dict[str, Any]) -> None:
        with timeline, ui.row().classes("w-full dg-row items-start no-wrap gap-3"):
            ui.label(f"#{event['traceSeq']}").classes("dg-mono dg-muted w-10")
            with ui.column().classes("gap-1 flex-1 min-w-0"):
                with ui.row().classes("items-center gap-2"):
                    theme.chip(event["eventType"], theme.tone_of(event["eventType"]))
                    ui.label(event["occurredAt"]).classes("text-xs dg-muted")
                    ui.label(f"{event['actor']['actorType']}:{event['actor']['actorId']}").classes(
                        "text-xs dg-muted"
                    )
                    ui.label(f"log_seq {event['logSeq']}").classes("text-xs dg-mono dg-muted")
                with ui.expansion("payload", icon="data_object").classes("w-full dg-payload"):
                    ui.code(json.dumps(event["payload"], indent=2, sort_keys=True), language="json")
                    theme.mono(event["payloadHash"]).classes("dg-muted")

    for event in events:
        add_event(event)
    draw_strip()

    def on_event(data: dict[str, Any]) -> None:
        event = data["traceEvents"]
        if events and event["traceSeq"] <= events[-1]["traceSeq"]:
            return
        events.append(event)
        add_event(event)
        draw_strip()
        count.text = f"{len(events)} events"

    if not trace["finished"]:
        page.live(
            LIVE,
            lambda: {"id": page.trace_id, "after": events[-1]["traceSeq"] if events else -1},
            on_event,
        )
