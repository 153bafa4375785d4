"""Policy simulation: re-judge recorded decisions under a candidate threshold rule and show
the decisions that would flip (a table) and how the flips turned out (a small chart)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import ui

from ui import theme
from ui.api import ApiError
from ui.page import Page

RUN = """simulationId policyId status total processed request requestedAt finishedAt
  error { code message }
  summary { evaluated flipped loosened tightened flippedApprovals flippedApprovalsWithIncident
            flippedRejections }
  flips(first: 200) { traceId title finishedAt recorded simulated rule reviewDecision
                      committed incident outcome }"""
RUNS = f"{{ policySimulationRuns(first: 10) {{ {RUN} }} }}"
SIMULATE = f"""mutation($policy: String!, $rules: [PolicyRuleInput!]!, $why: String!,
  $default: String!) {{
  simulatePolicy(policyId: $policy, rules: $rules, reason: $why, defaultDecision: $default) {{
    simulation {{ {RUN} }} errors {{ code message }} }} }}"""
LIVE = f"subscription($id: String!) {{ policySimulationRun(simulationId: $id) {{ {RUN} }} }}"
OPS = ("GT", "GTE", "LT", "LTE", "EQ", "NEQ")
COLUMNS = [
    {"name": "traceId", "label": "trace", "field": "traceId", "align": "left"},
    {"name": "finishedAt", "label": "finished", "field": "finishedAt", "align": "left"},
    {"name": "recorded", "label": "recorded", "field": "recorded", "align": "left"},
    {"name": "simulated", "label": "simulated", "field": "simulated", "align": "left"},
    {"name": "reviewDecision", "label": "reviewer", "field": "reviewDecision", "align": "left"},
    {"name": "incident", "label": "incident", "field": "incident", "align": "left"},
]


def chart_options(summary: dict[str, Any]) -> dict[str, Any]:
    """How the flips turned out, as one bar each."""
    bars = [
        ("approved, fine", summary["flippedApprovals"] - summary["flippedApprovalsWithIncident"]),
        ("approved, incident", summary["flippedApprovalsWithIncident"]),
        ("rejected", summary["flippedRejections"]),
        ("now stopped", summary["tightened"]),
    ]
    return {
        "grid": {"left": 40, "right": 10, "top": 16, "bottom": 30},
        "animation": False,
        "xAxis": {
            "type": "category",
            "data": [b[0] for b in bars],
            "axisLabel": {"interval": 0, "fontSize": 11},
        },
        "yAxis": {"type": "value", "minInterval": 1},
        "series": [{"type": "bar", "data": [b[1] for b in bars]}],
    }


def _value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def draw_run(run: dict[str, Any]) -> None:
    with ui.column().classes("w-full dg-row gap-2").mark(f"simulation-{run['simulationId']}"):
        with ui.row().classes("w-full items-center gap-2"):
            theme.chip(run["status"].lower(), theme.tone_of(run["status"]))
            rules = run["request"]["rules"]
            text = ", ".join(
                f"{r['fact']} {r['op'].upper()} {_value(r['value'])} -> {r['decision']}"
                for r in rules
            )
            ui.label(f"{run['policyId']}: {text}").classes("font-medium")
            ui.space()
            ui.label(f"{run['processed']}/{run['total']} cases").classes("text-xs dg-muted")
        if run["error"]:
            theme.chip(f"{run['error']['code']}: {run['error']['message']}", "alert")
        summary = run["summary"]
        if summary is None:
            ui.linear_progress(
                value=run["processed"] / run["total"] if run["total"] else 0, show_value=False
            ).props("rounded color=primary")
            return
        with ui.row().classes("gap-2 dg-simulation-summary").mark("simulation-summary"):
            theme.chip(f"{summary['evaluated']} re-judged", "info")
            theme.chip(f"{summary['flipped']} flipped", "warn" if summary["flipped"] else "good")
            theme.chip(f"{summary['flippedApprovals']} flipped approvals")
            theme.chip(
                f"{summary['flippedApprovalsWithIncident']} of them with an incident",
                "alert" if summary["flippedApprovalsWithIncident"] else "good",
            )
        ui.echart(chart_options(summary)).classes("w-full h-[180px] dg-simulation-chart").mark(
            "simulation-chart"
        )
        rows = [f | {"finishedAt": (f["finishedAt"] or "")[:10]} for f in run["flips"]]
        ui.table(columns=COLUMNS, rows=rows, row_key="traceId").classes(
            "w-full dg-simulation-flips"
        ).props("dense flat").mark("simulation-flips")


async def render(page: Page) -> None:
    allowed = page.can("admin")
    with ui.row().classes("w-full gap-4 items-start no-wrap"):
        with theme.card("Candidate rule", classes="w-[420px] shrink-0"):
            if not allowed:
                theme.chip(page.why_not("admin"), "warn", "lock")
            policy = ui.input("policy id", value="discount-cap").props("outlined dense")
            fact = ui.input("fact", value="requested_discount_pct").props("outlined dense")
            with ui.row().classes("w-full gap-2 no-wrap"):
                op = ui.select(list(OPS), value="GT", label="op").props("outlined dense")
                value = ui.number("value", value=20).props("outlined dense").mark("sim-value")
            decision = ui.input("decision when it holds", value="require_exception").props(
                "outlined dense"
            )
            default = ui.input("decision otherwise", value="allow").props("outlined dense")
            reason = ui.input("reason (recorded in the audit log)").props("outlined dense")
            reason.mark("sim-reason")
            for field in (policy, fact, decision, default, reason):
                field.classes("w-full")
            feedback = ui.label().classes("text-sm")

            async def submit() -> None:
                if not (reason.value or "").strip():
                    feedback.text = "A reason is required."
                    return
                rule = {"fact": fact.value, "op": op.value, "value": value.value,
                        "decision": decision.value}  # fmt: skip
                try:
                    result = await page.api.mutate(
                        SIMULATE,
                        "simulatePolicy",
                        {
                            "policy": policy.value,
                            "rules": [rule],
                            "why": reason.value.strip(),
                            "default": default.value,
                        },
                    )
                except ApiError as error:
                    feedback.text = error.message
                    return
                ui.notify(f"Simulation {result['simulation']['status'].lower()}", type="positive")
                page.go()

            button = ui.button("Simulate", icon="science", on_click=submit).mark("sim-submit")
            if not allowed:
                button.disable()
        with theme.card("Runs", classes="flex-1 min-w-0"):
            panel = theme.PanelState(empty="No policy simulation has run in this tenant yet.")
    if not allowed:
        panel.show(lambda: None, 0, "Simulations are visible to admin keys.")
        return
    try:
        runs = (await page.api.query(RUNS))["policySimulationRuns"]
    except ApiError as error:
        panel.error(error.message)
        return
    by_id = {run["simulationId"]: run for run in runs}

    def draw() -> None:
        for run in by_id.values():
            draw_run(run)

    panel.show(draw, len(by_id))

    def on_update(data: dict[str, Any]) -> None:
        update = data["policySimulationRun"]
        by_id[update["simulationId"]] = update
        panel.show(draw, len(by_id))

    def variables(simulation_id: str) -> Callable[[], dict[str, str]]:
        return lambda: {"id": simulation_id}

    for run in runs:
        if run["status"] in ("QUEUED", "RUNNING"):
            page.live(LIVE, variables(run["simulationId"]), on_update)
