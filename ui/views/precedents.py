"""Precedents for the selected trace (outcome and policy lineage), and a side-by-side
comparison of two traces."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from ui import theme
from ui.api import ApiError
from ui.page import Page
from ui.views.traces import TRACE, strip

PRECEDENTS = """query($policy: String, $version: String, $type: String, $entity: String) {
  precedents(policyId: $policy, policyVersion: $version, entityType: $type, entityId: $entity,
             first: 20) { traceId workflow title outcome policyId policyVersion finishedAt }
  projectionHealth { lastLogSeq projectedTo } }"""


def policy_of(events: list[dict[str, Any]]) -> tuple[str, str] | None:
    for event in reversed(events):
        policy = event["payload"].get("policy") if event["eventType"] == "PolicyEvaluated" else None
        if isinstance(policy, dict):
            return str(policy.get("policy_id")), str(policy.get("policy_version"))
    return None


def outcome_delta(mine: str | None, theirs: str | None) -> tuple[str, str]:
    if mine is None or theirs is None:
        return "insufficient signal", "quiet"
    if mine == theirs:
        return "same outcome", "good"
    return f"{theirs} vs {mine}", "warn"


async def _trace(page: Page, trace_id: str) -> dict[str, Any] | None:
    trace: dict[str, Any] | None = (await page.api.query(TRACE, {"id": trace_id}))["trace"]
    return trace


async def render(page: Page) -> None:
    if page.trace_id is None:
        with theme.card("Precedents"):
            ui.label("Select a trace first (Traces).").classes("dg-muted")
        return
    with ui.row().classes("w-full gap-4 items-start no-wrap"):
        with theme.card("Precedents", classes="w-[460px] shrink-0"):
            panel = theme.PanelState(empty="No similar finished traces yet.")
        comparison = ui.column().classes("flex-1 gap-3 min-w-0")
    try:
        trace = await _trace(page, page.trace_id)
        if trace is None:
            panel.error(f"No trace {page.trace_id}")
            return
        events = [e["node"] for e in trace["events"]["edges"]]
        policy = policy_of(events)
        entity = trace["primaryEntity"] or {}
        data = await page.api.query(
            PRECEDENTS,
            {
                "policy": policy[0] if policy else None,
                "version": policy[1] if policy else None,
                "type": None if policy else entity.get("entityType"),
                "entity": None if policy else entity.get("entityId"),
            },
        )
    except ApiError as error:
        panel.error(error.message)
        return
    hits = [h for h in data["precedents"] if h["traceId"] != page.trace_id]
    health = data["projectionHealth"]
    panel.stale(health["lastLogSeq"] - health["projectedTo"])

    def draw() -> None:
        basis = f"policy {policy[0]}@{policy[1]}" if policy else "the same primary entity"
        ui.label(f"Finished traces decided under {basis}").classes("text-sm dg-muted pb-2")
        for hit in hits:
            text, tone = outcome_delta(trace["outcome"], hit["outcome"])
            with ui.column().classes("w-full dg-row gap-1").mark(f"precedent-{hit['traceId']}"):
                with ui.row().classes("w-full items-center gap-2 no-wrap"):
                    ui.label(hit["title"] or hit["traceId"]).classes("font-medium truncate flex-1")
                    theme.chip(hit["outcome"] or "open")
                with ui.row().classes("items-center gap-2 text-xs dg-muted"):
                    theme.chip(text, tone)
                    ui.label(
                        f"{hit['policyId']}@{hit['policyVersion']}" if hit["policyId"] else "—"
                    )
                    ui.label(f"finished {hit['finishedAt']}")
                with ui.row().classes("gap-2"):
                    ui.button(
                        "Open",
                        on_click=lambda _, t=hit["traceId"]: page.go(view="traces", trace_id=t),
                    ).props("flat dense")
                    ui.button(
                        "Compare",
                        on_click=lambda _, t=hit["traceId"]: page.go(view="precedents", compare=t),
                    ).props("flat dense")

    panel.show(draw, len(hits))
    other_id = page.params.get("compare")
    with comparison:
        if not other_id:
            with theme.card("Comparison"):
                ui.label(
                    "Pick a precedent's Compare to see the two decisions side by side."
                ).classes("dg-muted")
            return
        try:
            other = await _trace(page, other_id)
        except ApiError as error:
            with theme.card("Comparison"):
                ui.label(error.message)
            return
        with ui.row().classes("w-full gap-3 no-wrap").mark("comparison"):
            for side in (trace, other):
                if side is None:
                    continue
                side_events = [e["node"] for e in side["events"]["edges"]]
                with theme.card(side["traceId"], classes="flex-1 min-w-0"):
                    ui.label(side["title"]).classes("font-semibold")
                    theme.chip(side["outcome"] or "open")
                    for stage, state_text, detail in strip(side_events):
                        with ui.row().classes("w-full items-center gap-2 dg-row"):
                            ui.label(stage).classes("w-24 dg-card-title")
                            theme.chip(state_text)
                            ui.label(detail).classes("text-xs dg-mono dg-muted truncate")
                    ui.label(f"{side['eventCount']} events · started {side['startedAt']}").classes(
                        "text-xs dg-muted"
                    )
