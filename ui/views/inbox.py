"""The review inbox and a workflow's detail: SLA countdown, history, precedent context, and
the review actions (each one a workflow mutation; hidden reasons when the key may not)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from nicegui import ui

from ui import theme
from ui.api import ApiError
from ui.page import Page

ITEM = """workflowId traceId kind status priority title slaDueAt overdue assignedRole
  assignedAccountId escalationCount currentDecision currentReason requestedAt resolvedAt"""
INBOX = f"""query($open: Boolean!, $overdue: Boolean!) {{
  workflows(onlyOpen: $open, overdue: $overdue, first: 200) {{
    edges {{ node {{ {ITEM} }} }} totalCount summary {{ open overdue escalated approved rejected }}
    projectedTo }}
  projectionHealth {{ lastLogSeq }} }}"""
DETAIL = f"""query($id: String!) {{ workflow(workflowId: $id) {{ {ITEM} subjectType subjectId
  policyId policyVersion metadata requestedBy {{ actorId actorType }}
  history {{ seq action actorId actorType note resultingStatus at }}
  notifications {{ category message createdAt }}
  scoredPrecedents(first: 3) {{ candidates
    results {{ traceId title score outcome {{ decision committed incident traceOutcome }}
               matches {{ feature detail contribution }} }}
    warnings {{ decision message traceIds }} }}
  simulation {{ riskSignals priority recommendedReason
    replaySuggestion {{ mode projection }} }} }} }}"""
REVIEW = """mutation($id: String!, $d: ReviewDecision!, $why: String!) {
  reviewWorkflow(workflowId: $id, decision: $d, rationale: $why) {
    workflow { status } appendedEventId errors { code message } } }"""
ACTION = """mutation($id: String!, $a: WorkflowActionKind!, $reason: String, $note: String,
  $account: String, $role: String, $confirm: String) {
  workflowAction(workflowId: $id, action: $a, reason: $reason, note: $note,
                 assignedAccountId: $account, assignedRole: $role, confirmation: $confirm) {
    workflow { status } appendedEventId errors { code message } } }"""
TERMINAL = ("APPROVED", "REJECTED", "OVERRIDDEN")


def countdown(due: str | None, status: str, now: datetime | None = None) -> tuple[str, str]:
    """The SLA as a person reads it: ("due in 1h 12m", tone) or ("overdue by 3m", alert)."""
    if due is None:
        return "no SLA", "quiet"
    if status in TERMINAL:
        return "closed", "good"
    moment = datetime.fromisoformat(due.replace("Z", "+00:00"))
    delta = int((moment - (now or datetime.now(UTC))).total_seconds())
    span = abs(delta)
    days, rest = divmod(span, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    text = (
        f"{days}d {hours}h"
        if days
        else f"{hours}h {minutes}m"
        if hours
        else f"{minutes}m {seconds}s"
    )
    if delta < 0:
        return f"overdue by {text}", "alert"
    return f"due in {text}", "warn" if delta <= 1800 else "good"


async def render(page: Page) -> None:
    only_open = page.params.get("open", "1") == "1"
    only_overdue = page.params.get("overdue") == "1"
    with ui.row().classes("w-full gap-4 items-start no-wrap"):
        with ui.column().classes("w-[440px] shrink-0 gap-3"), theme.card("Review inbox"):
            with ui.row().classes("gap-4"):
                ui.switch(
                    "open only",
                    value=only_open,
                    on_change=lambda e: page.go(open="1" if e.value else "0"),
                ).mark("open-only")
                ui.switch(
                    "overdue",
                    value=only_overdue,
                    on_change=lambda e: page.go(overdue="1" if e.value else None),
                )
            summary = ui.row().classes("gap-2")
            inbox = theme.PanelState(empty="Nothing waiting for review.")
        detail = ui.column().classes("flex-1 gap-3 min-w-0")

    clocks: list[tuple[Any, str | None, str]] = []

    async def load_inbox() -> None:
        try:
            data = await page.api.query(INBOX, {"open": only_open, "overdue": only_overdue})
        except ApiError as error:
            inbox.error(error.message)
            return
        items = [e["node"] for e in data["workflows"]["edges"]]
        counts = data["workflows"]["summary"]
        summary.clear()
        with summary:
            theme.chip(f"{counts['open']} open", "info")
            theme.chip(f"{counts['overdue']} overdue", "alert" if counts["overdue"] else "good")
            theme.chip(
                f"{counts['escalated']} escalated", "alert" if counts["escalated"] else "quiet"
            )
        inbox.stale(data["projectionHealth"]["lastLogSeq"] - data["workflows"]["projectedTo"])
        clocks.clear()

        def draw() -> None:
            for item in items:
                selected = item["workflowId"] == page.workflow_id
                row = ui.column().classes(
                    "w-full dg-row gap-1 cursor-pointer " + ("dg-selected" if selected else "")
                )
                row.on(
                    "click",
                    lambda _, w=item["workflowId"], t=item["traceId"]: page.go(
                        workflow_id=w, trace_id=t, view="inbox"
                    ),
                )
                row.mark(f"workflow-{item['workflowId']}")
                with row:
                    with ui.row().classes("w-full items-center gap-2 no-wrap"):
                        ui.label(item["title"]).classes("font-medium truncate flex-1")
                        theme.chip(
                            item["status"].lower().replace("_", " "),
                            "alert" if item["overdue"] else theme.tone_of(item["status"]),
                        )
                    with ui.row().classes("items-center gap-2 text-xs dg-muted"):
                        theme.chip(item["priority"])
                        ui.label(item["kind"].lower().replace("_", " "))
                        text, tone = countdown(item["slaDueAt"], item["status"])
                        clock = theme.chip(text, tone)
                        clocks.append((clock, item["slaDueAt"], item["status"]))
                        ui.label(item["assignedAccountId"] or item["assignedRole"] or "unassigned")

        inbox.show(draw, len(items))

    await load_inbox()
    refresh_detail: Callable[[], Awaitable[None]] | None = None

    drawing = asyncio.Lock()  # the retry timer and a workflow change may race to draw it

    async def draw_detail() -> None:
        """Draw the selected workflow unless it is already shown."""
        nonlocal refresh_detail
        async with drawing:
            if refresh_detail is not None:
                return
            detail.clear()
            with detail:
                refresh_detail = await _detail(page)

    if page.workflow_id:
        await draw_detail()
        if refresh_detail is None:
            # Not (yet) projected, e.g. a deep link opened right after the events were
            # appended: look again for a minute, besides redrawing on its first change.
            attempts = iter(range(30))

            async def look_again() -> None:
                if refresh_detail is None and next(attempts, None) is not None:
                    await draw_detail()
                else:
                    retry.deactivate()

            retry = ui.timer(2.0, look_again)
    else:
        with detail, theme.card():
            ui.label("Select a review to decide it.").classes("dg-muted")

    def tick() -> None:
        for clock, due, status in clocks:
            text, tone = countdown(due, status)
            clock.content = theme.chip_html(text, tone)

    ui.timer(1.0, tick)

    async def on_change(data: dict[str, Any]) -> None:
        await load_inbox()
        changed = data["workflowChanged"]["workflowId"]
        if changed != page.workflow_id:
            return
        if refresh_detail is not None:
            await refresh_detail()  # the facts and history; a half-typed rationale stays
        else:
            # A deep link opened before the workflow was projected showed "not found":
            # draw it now that it exists.
            await draw_detail()

    page.live("subscription { workflowChanged { seq workflowId } }", dict, on_change)


async def _detail(page: Page) -> Callable[[], Awaitable[None]] | None:
    """Draw the selected workflow; returns how to redraw its facts when it changes."""
    assert page.workflow_id is not None
    try:
        wf = (await page.api.query(DETAIL, {"id": page.workflow_id}))["workflow"]
    except ApiError as error:
        with theme.card():
            theme.chip("unavailable", "alert")
            ui.label(error.message)
        return None
    facts = ui.column().classes("w-full gap-3")
    buttons = _actions(page, wf)
    history = ui.row().classes("w-full gap-3 items-start no-wrap")
    state = {"wf": wf}

    def draw() -> None:
        wf = state["wf"]
        facts.clear()
        with facts:
            _facts(page, wf)
        history.clear()
        with history:
            _history(page, wf)
        buttons(wf)

    async def refresh() -> None:
        try:
            state["wf"] = (await page.api.query(DETAIL, {"id": page.workflow_id}))["workflow"]
        except ApiError:
            return  # keep what is shown; the next change retries
        draw()

    draw()
    with ui.expansion("metadata", icon="data_object").classes("w-full dg-payload"):
        ui.code(json.dumps(wf["metadata"], indent=2, sort_keys=True), language="json")
    return refresh


def _facts(page: Page, wf: dict[str, Any]) -> None:
    with theme.card().mark("workflow-detail"):
        with ui.row().classes("w-full items-center gap-3"):
            ui.label(wf["title"]).classes("text-xl font-semibold")
            theme.chip(
                wf["status"].lower().replace("_", " "),
                "alert" if wf["overdue"] else theme.tone_of(wf["status"]),
            ).classes("dg-workflow-status").mark("workflow-status")
            ui.space()
            ui.button(
                "Trace",
                icon="timeline",
                on_click=lambda: page.go(view="traces", trace_id=wf["traceId"]),
            ).props("flat")
        theme.mono(wf["workflowId"]).classes("dg-muted break-all")
        with ui.grid(columns=4).classes("w-full gap-3 text-sm"):
            for label, value in (
                ("kind", wf["kind"].lower().replace("_", " ")),
                ("priority", wf["priority"]),
                ("assignee", wf["assignedAccountId"] or wf["assignedRole"] or "unassigned"),
                ("requested", wf["requestedAt"]),
                ("SLA due", wf["slaDueAt"] or "—"),
                ("policy", f"{wf['policyId']}@{wf['policyVersion']}" if wf["policyId"] else "—"),
                ("decision", wf["currentDecision"] or "—"),
            ):
                with ui.column().classes("gap-0 min-w-0"):
                    ui.label(label).classes("dg-card-title")
                    ui.label(str(value)).classes("truncate")
        text, tone = countdown(wf["slaDueAt"], wf["status"])
        sla = theme.chip(text, tone, "timer").mark("sla")
        if wf["currentReason"]:
            ui.label(wf["currentReason"]).classes("text-sm dg-muted")

        def tick() -> None:
            text, tone = countdown(wf["slaDueAt"], wf["status"])
            sla.content = theme.chip_html(text, tone)

        ui.timer(1.0, tick)


def _history(page: Page, wf: dict[str, Any]) -> None:
    with theme.card("History", classes="flex-1 min-w-0"):
        for step in wf["history"]:
            with ui.row().classes("w-full dg-row items-start gap-3 no-wrap"):
                theme.chip(step["action"].replace("_", " "), theme.tone_of(step["resultingStatus"]))
                with ui.column().classes("gap-0 min-w-0 flex-1"):
                    ui.label(f"{step['actorId']} · {step['at']}").classes("text-xs dg-muted")
                    if step["note"]:
                        ui.label(step["note"]).classes("text-sm")
    with ui.column().classes("w-[360px] shrink-0 gap-3"):
        with theme.card("Precedent context").mark("scored-precedents"):
            scored = wf["scoredPrecedents"]
            if not scored["results"]:
                ui.label("No similar finished traces.").classes("dg-muted text-sm")
            for hit in scored["results"]:
                _precedent(page, hit)
            sim = wf["simulation"]
            ui.label("Signals: " + (", ".join(sim["riskSignals"]) or "none")).classes(
                "text-xs dg-muted"
            )
        with theme.card("Notifications"):
            for notice in wf["notifications"][:8]:
                with ui.row().classes("w-full gap-2 items-center no-wrap"):
                    theme.chip(notice["category"].replace("_", " "), "info")
                    ui.label(notice["message"]).classes("text-xs truncate")


def _precedent(page: Page, hit: dict[str, Any]) -> None:
    """One scored precedent: its score, how it turned out, and why it matched."""
    outcome = hit["outcome"]
    with ui.column().classes("w-full gap-1 dg-row dg-scored-precedent").mark("scored-precedent"):
        with ui.row().classes("w-full items-center gap-2 no-wrap"):
            ui.link(
                hit["title"] or hit["traceId"], page.link(view="traces", trace_id=hit["traceId"])
            ).classes("text-sm truncate flex-1")
            theme.chip(f"{hit['score']:.2f}", "info").tooltip("similarity, 0 to 1")
        with ui.row().classes("gap-1"):
            theme.chip(outcome["decision"] or "undecided")
            if outcome["committed"]:
                theme.chip("committed", "good")
            if outcome["incident"]:
                theme.chip("incident", "alert")
        for match in hit["matches"]:
            ui.label(f"+{match['contribution']:.2f} {match['detail']}").classes("text-xs dg-muted")


def _warnings(wf: dict[str, Any]) -> None:
    """What deciding either way would go against, before the buttons that do it."""
    for warning in wf["scoredPrecedents"]["warnings"]:
        row = ui.row().classes("w-full items-start gap-2 no-wrap dg-precedent-warning")
        with row.mark("precedent-warning"):
            theme.chip(f"if {warning['decision']}", "warn", "warning")
            ui.label(warning["message"]).classes("text-sm")


def _actions(page: Page, wf: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """The decision form; returns how to re-enable its buttons for a changed workflow."""
    can_review = page.can("review")
    can_override = page.can("admin") and wf["kind"] == "EXCEPTION_REVIEW"
    buttons: dict[str, Any] = {}
    with theme.card("Decide").mark("review-actions"):
        if not can_review:
            theme.chip(page.why_not("review"), "warn", "lock")
        _warnings(wf)
        closed_note = ui.label().classes("text-sm dg-muted")
        rationale = ui.textarea("Rationale or note").props("outlined autogrow").classes("w-full")
        rationale.mark("rationale")
        feedback = ui.label().classes("text-sm")

        async def run(action: str) -> None:
            text = (rationale.value or "").strip()
            try:
                if action in ("APPROVE", "REJECT"):
                    await page.api.mutate(
                        REVIEW, "reviewWorkflow", {"id": wf["workflowId"], "d": action, "why": text}
                    )
                else:
                    variables = {
                        "id": wf["workflowId"],
                        "a": action,
                        "reason": text or None,
                        "note": text or None,
                    }
                    if action == "REASSIGN":
                        variables |= {"role": role.value or None, "account": account.value or None}
                    if action == "OVERRIDE":
                        variables |= {"confirm": confirm.value}
                    await page.api.mutate(ACTION, "workflowAction", variables)
            except ApiError as error:
                feedback.text = error.message
                feedback.classes(replace="text-sm text-red-700")
                return
            ui.notify(f"Workflow action recorded for {wf['workflowId']}", type="positive")
            page.go()  # reload: the detail, the inbox and the trace all show the change

        with ui.row().classes("gap-2 flex-wrap"):
            for action, icon, colour in (
                ("APPROVE", "check", "positive"),
                ("REJECT", "close", "negative"),
            ):
                buttons[action] = ui.button(
                    action.title(), icon=icon, color=colour, on_click=lambda _, a=action: run(a)
                ).mark(f"action-{action.lower()}")
            for action, label in (
                ("CLAIM", "Claim"),
                ("COMMENT", "Comment"),
                ("REQUEST_CHANGES", "Request changes"),
                ("ESCALATE", "Escalate"),
            ):
                buttons[action] = (
                    ui.button(label, on_click=lambda _, a=action: run(a))
                    .props("outline")
                    .mark(f"action-{action.lower()}")
                )
        with ui.row().classes("gap-2 items-end"):
            role = ui.input("reassign to role").props("dense outlined")
            account = ui.input("or key id").props("dense outlined")
            buttons["REASSIGN"] = ui.button("Reassign", on_click=lambda: run("REASSIGN")).props(
                "outline"
            )
        with ui.row().classes("gap-2 items-end"):
            phrase = f"OVERRIDE {wf['workflowId'].upper()}"
            confirm = ui.input(f"type {phrase}").props("dense outlined").classes("min-w-[380px]")
            confirm.mark("override-confirm")
            buttons["OVERRIDE"] = ui.button(
                "Override", icon="gavel", color="warning", on_click=lambda: run("OVERRIDE")
            ).mark("action-override")
            if not page.can("admin"):
                buttons["OVERRIDE"].tooltip(page.why_not("admin"))

    def enable(current: dict[str, Any]) -> None:
        closed = current["status"] in TERMINAL
        closed_note.text = (
            f"This review is {current['status'].lower()}; you can still comment."
            if closed and can_review
            else ""
        )
        for action, button in buttons.items():
            allowed = can_override if action == "OVERRIDE" else can_review
            if closed and action != "COMMENT":
                allowed = False
            button.enable() if allowed else button.disable()

    return enable
