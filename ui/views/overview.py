"""Overview: summary cards, projection health per projection, alerts. All live."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from ui import theme
from ui.api import ApiError
from ui.page import Page

HEALTH_FIELDS = """lastLogSeq eventCount traceCount projectedTo
  projections { name cursor pending stale status failures { logSeq eventId code message } }"""
OVERVIEW = f"""{{
  projectionHealth {{ {HEALTH_FIELDS}
    digests {{ contextGraph traceSummary precedentIndex fullProjection workflows }} }}
  workflows(onlyOpen: true, first: 0) {{ summary {{ open overdue escalated }} }}
  replays(first: 20) {{ status }}
}}"""
OVERVIEW_READER = OVERVIEW.replace("  replays(first: 20) { status }\n", "")
LIVE_HEALTH = f"subscription {{ projectionHealth {{ {HEALTH_FIELDS} }} }}"
REVIEWS = "{ workflows(onlyOpen: true, first: 0) { summary { open overdue escalated } } }"


def alerts_for(health: dict[str, Any], reviews: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(tone, title, detail) of what needs an operator, worst first."""
    found: list[tuple[str, str, str]] = []
    failures = sum(len(p["failures"]) for p in health["projections"])
    if failures:
        found.append(
            (
                "alert",
                "Projection failures need review",
                f"{failures} open failure(s): a projection stopped at a poison event",
            )
        )
    if reviews.get("overdue"):
        found.append(
            (
                "alert",
                "Workflow SLA risk detected",
                f"{reviews['overdue']} open review(s) past their SLA",
            )
        )
    stale = [p["name"] for p in health["projections"] if p["stale"]]
    if stale:
        found.append(("warn", "Projection lag detected", "behind the log: " + ", ".join(stale)))
    return found


async def render(page: Page) -> None:
    state: dict[str, Any] = {}
    cards = ui.row().classes("w-full gap-4 flex-wrap")
    alerts = ui.column().classes("w-full gap-2")
    with theme.card("Projection health", classes="w-full"):
        panel = theme.PanelState(empty="No projections yet: append an event to start.")

    def draw() -> None:
        health, reviews = state["health"], state["reviews"]
        pending = max((p["pending"] for p in health["projections"]), default=0)
        stale = sum(1 for p in health["projections"] if p["stale"])
        failures = sum(len(p["failures"]) for p in health["projections"])
        cards.clear()
        with cards:
            theme.metric(
                "Pending events", pending, "not yet projected", "warn" if pending else "good"
            )
            theme.metric(
                "Stale projections",
                stale,
                f"of {len(health['projections'])}",
                "warn" if stale else "good",
            )
            theme.metric(
                "Open reviews", reviews.get("open", 0), f"{reviews.get('escalated', 0)} escalated"
            )
            theme.metric(
                "Overdue reviews",
                reviews.get("overdue", 0),
                "past SLA",
                "alert" if reviews.get("overdue") else "good",
            )
            theme.metric(
                "Open failures", failures, "poison events", "alert" if failures else "good"
            )
            theme.metric("Traces", health["traceCount"], f"{health['eventCount']} events")
            if "replays" in state:
                active = sum(1 for r in state["replays"] if r["status"] in ("QUEUED", "RUNNING"))
                theme.metric("Active replays", active, "queued or running")
        alerts.clear()
        with alerts:
            for tone, title, detail in alerts_for(health, reviews):
                with ui.row().classes("dg-card w-full items-center gap-3 py-2"):
                    theme.chip(title, tone, "warning" if tone == "warn" else "report")
                    ui.label(detail).classes("text-sm dg-muted")
        digests = state.get("digests", {})

        def rows() -> None:
            key = {
                "context_graph": "contextGraph",
                "trace_summary": "traceSummary",
                "precedent_index": "precedentIndex",
                "workflows": "workflows",
            }
            with ui.row().classes("w-full dg-row text-xs dg-muted font-semibold"):
                for title, width in (
                    ("projection", "w-40"),
                    ("cursor", "w-24"),
                    ("pending", "w-24"),
                    ("status", "w-32"),
                    ("failures", "w-24"),
                    ("digest", "flex-1"),
                ):
                    ui.label(title).classes(width)
            for p in health["projections"]:
                with ui.row().classes("w-full dg-row items-center").mark(f"health-{p['name']}"):
                    ui.label(p["name"]).classes("w-40 font-medium")
                    ui.label(str(p["cursor"])).classes("w-24 dg-mono")
                    ui.label(str(p["pending"])).classes("w-24 dg-mono")
                    with ui.row().classes("w-32"):
                        theme.chip(
                            p["status"].lower().replace("_", " "), theme.tone_of(p["status"])
                        )
                    ui.label(str(len(p["failures"]))).classes("w-24 dg-mono")
                    ui.label(theme.short(digests.get(key[p["name"]]), 28)).classes("flex-1 dg-mono")
                for failure in p["failures"]:
                    with ui.row().classes("w-full pl-8 pb-2 text-sm"):
                        theme.chip(failure["code"], "alert")
                        ui.label(
                            f"stopped before log_seq {failure['logSeq']}: {failure['message']}"
                        )
            if digests.get("fullProjection"):
                with ui.row().classes("w-full pt-2 items-center gap-2"):
                    ui.label("full projection").classes("dg-card-title")
                    theme.mono(digests["fullProjection"])

        panel.show(rows, len(health["projections"]))
        panel.stale(health["lastLogSeq"] - health["projectedTo"])

    try:
        data = await page.api.query(OVERVIEW if page.can("admin") else OVERVIEW_READER)
    except ApiError as error:
        panel.error(error.message)
        return
    state["health"] = data["projectionHealth"]
    state["digests"] = data["projectionHealth"]["digests"]
    state["reviews"] = data["workflows"]["summary"]
    if "replays" in data:
        state["replays"] = data["replays"]
    draw()

    def on_health(message: dict[str, Any]) -> None:
        state["health"] = message["projectionHealth"]
        draw()

    async def on_change(_: dict[str, Any]) -> None:
        state["reviews"] = (await page.api.query(REVIEWS))["workflows"]["summary"]
        draw()

    page.live(LIVE_HEALTH, dict, on_health)
    page.live("subscription { workflowChanged { seq } }", dict, on_change)
