"""Tenant and environment status: who you are, what the tenant holds, how the platform is."""

from __future__ import annotations

from nicegui import ui

from ui import theme
from ui.api import ApiError
from ui.page import Page

STATUS = """{ tenantStatus { traces openTraces finishedTraces lastActivityAt
    workflowMix { workflow traces } outcomes { outcome traces } }
  systemStatus { version serverTime components { name ok detail } }
  projectionHealth { lastLogSeq eventCount } }"""


async def render(page: Page) -> None:
    with ui.row().classes("w-full gap-4 items-start"):
        tenant_card = theme.card(f"Tenant {page.tenant}", classes="flex-1 min-w-[320px]")
        system_card = theme.card("Environment", classes="flex-1 min-w-[320px]")
        key_card = theme.card("Signed in", classes="flex-1 min-w-[280px]")
    with key_card:
        ui.label(page.viewer.name).classes("font-semibold")
        ui.label(f"key {page.viewer.key_id}").classes("dg-mono text-xs dg-muted")
        with ui.row().classes("gap-2"):
            for role in page.viewer.roles:
                theme.chip(role, "info")
        ui.label(f"tenants: {', '.join(page.viewer.tenants) or '—'}").classes("text-sm")
    try:
        data = await page.api.query(STATUS)
    except ApiError as error:
        with tenant_card:
            theme.chip("unavailable", "alert")
            ui.label(error.message)
        return
    tenant, system = data["tenantStatus"], data["systemStatus"]
    with tenant_card:
        with ui.row().classes("gap-6"):
            for label, value in (
                ("traces", tenant["traces"]),
                ("open", tenant["openTraces"]),
                ("finished", tenant["finishedTraces"]),
                ("events", data["projectionHealth"]["eventCount"]),
            ):
                with ui.column().classes("gap-0"):
                    ui.label(str(value)).classes("dg-metric")
                    ui.label(label).classes("dg-card-title")
        ui.label(f"last activity {tenant['lastActivityAt'] or '—'}").classes("text-sm dg-muted")
        ui.label("workflow mix").classes("dg-card-title pt-2")
        for mix in tenant["workflowMix"]:
            with ui.row().classes("w-full dg-row"):
                ui.label(mix["workflow"]).classes("flex-1")
                ui.label(str(mix["traces"])).classes("dg-mono")
        with ui.row().classes("gap-2 pt-2"):
            for outcome in tenant["outcomes"]:
                theme.chip(
                    f"{outcome['outcome']} {outcome['traces']}", theme.tone_of(outcome["outcome"])
                )
    with system_card:
        ui.label(f"DecisionGraph {system['version']} · server time {system['serverTime']}").classes(
            "text-sm dg-muted"
        )
        ui.label(f"API {page.api.url}").classes("dg-mono text-xs dg-muted")
        for component in system["components"]:
            with (
                ui.row()
                .classes("w-full dg-row items-center")
                .mark(f"component-{component['name']}")
            ):
                theme.chip(
                    "ok" if component["ok"] else "down", "good" if component["ok"] else "alert"
                )
                ui.label(component["name"]).classes("font-medium w-32")
                ui.label(component["detail"]).classes("text-sm dg-muted")
