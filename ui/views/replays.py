"""Replay console: request CATCH_UP / REBUILD / VERIFY with a reason and a typed
confirmation, watch progress live, compare digests (expected vs actual), cancel."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import ui

from ui import theme
from ui.api import ApiError
from ui.page import Page

RUN = """replayId projection mode status reason requestedBy requestedAt startedAt finishedAt
  processedEvents lastLogSeq targetLogSeq digestsMatch cancelRequested
  expectedDigests { contextGraph traceSummary precedentIndex workflows fullProjection }
  actualDigests { contextGraph traceSummary precedentIndex workflows fullProjection }
  error { code message }"""
RUNS = f"{{ replays(first: 15) {{ {RUN} }} }}"
REQUEST = f"""mutation($p: ReplayProjection!, $m: ReplayMode!, $why: String!) {{
  requestReplay(projection: $p, mode: $m, reason: $why) {{
    replay {{ {RUN} }} errors {{ code message }} }} }}"""
CANCEL = """mutation($id: String!) { cancelReplay(replayId: $id) { replay { status }
  errors { code message } } }"""
LIVE = f"subscription($id: String!) {{ replay(replayId: $id) {{ {RUN} }} }}"
PROJECTIONS = ("ALL", "CONTEXT_GRAPH", "TRACE_SUMMARY", "PRECEDENT_INDEX", "WORKFLOWS")
MODES = ("CATCH_UP", "REBUILD", "VERIFY")
DIGESTS = (
    ("contextGraph", "context graph"),
    ("traceSummary", "trace summary"),
    ("precedentIndex", "precedent index"),
    ("workflows", "workflows"),
    ("fullProjection", "full projection"),
)


def confirmation_phrase(mode: str, projection: str) -> str:
    return f"{mode} {projection}"


def draw_run(run: dict[str, Any], on_cancel: Any) -> None:
    active = run["status"] in ("QUEUED", "RUNNING")
    with ui.column().classes("w-full dg-row gap-2").mark(f"replay-{run['replayId']}"):
        with ui.row().classes("w-full items-center gap-2"):
            theme.chip(run["status"].lower(), theme.tone_of(run["status"]))
            ui.label(f"{run['mode']} {run['projection']}").classes("font-medium")
            ui.label(run["replayId"]).classes("dg-mono dg-muted text-xs")
            ui.space()
            if run["digestsMatch"] is not None:
                theme.chip(
                    "digests match" if run["digestsMatch"] else "digests differ",
                    "good" if run["digestsMatch"] else "alert",
                    "verified" if run["digestsMatch"] else "report",
                )
            if active:
                ui.button("Cancel", on_click=lambda: on_cancel(run["replayId"])).props("flat dense")
        target = run["targetLogSeq"] or 0
        done = run["processedEvents"]
        if target:
            ui.linear_progress(value=min(1.0, run["lastLogSeq"] / target), show_value=False).props(
                "rounded color=primary"
            )
        position = f"{run['lastLogSeq']}/{target or '?'}"
        ui.label(f"processed {done} · position {position} · reason: {run['reason']}").classes(
            "text-xs dg-muted"
        )
        if run["error"]:
            theme.chip(f"{run['error']['code']}: {run['error']['message']}", "alert")
        expected, actual = run["expectedDigests"], run["actualDigests"]
        if expected or actual:
            with ui.column().classes("w-full gap-0 pl-2"):
                for key, label in DIGESTS:
                    want = (expected or {}).get(key)
                    got = (actual or {}).get(key)
                    if want is None and got is None:
                        continue
                    with ui.row().classes("w-full items-center gap-3 text-xs no-wrap"):
                        ui.label(label).classes("w-32 dg-card-title")
                        theme.mono(f"expected {theme.short(want, 24)}")
                        theme.mono(f"actual {theme.short(got, 24)}")
                        if want and got:
                            theme.chip(
                                "match" if want == got else "differ",
                                "good" if want == got else "alert",
                            )


async def render(page: Page) -> None:
    allowed = page.can("admin")
    with ui.row().classes("w-full gap-4 items-start no-wrap"):
        with theme.card("Request a replay", classes="w-[420px] shrink-0"):
            if not allowed:
                theme.chip(page.why_not("admin"), "warn", "lock")
            projection = ui.select(list(PROJECTIONS), value="ALL", label="projection").props(
                "outlined dense"
            )
            projection.classes("w-full")
            mode = ui.select(list(MODES), value="VERIFY", label="mode").props("outlined dense")
            mode.classes("w-full")
            reason = ui.input("reason (recorded in the audit log)").props("outlined dense")
            reason.classes("w-full")
            reason.mark("replay-reason")
            hint = ui.label().classes("text-xs dg-muted")
            confirm = ui.input("confirmation").props("outlined dense").mark("replay-confirm")
            confirm.classes("w-full")
            feedback = ui.label().classes("text-sm")

            def update_hint() -> None:
                hint.text = f"Type {confirmation_phrase(mode.value, projection.value)} to confirm"

            projection.on_value_change(update_hint)
            mode.on_value_change(update_hint)
            update_hint()

            async def submit() -> None:
                if not (reason.value or "").strip():
                    feedback.text = "A reason is required."
                    return
                if (confirm.value or "").strip() != confirmation_phrase(
                    mode.value, projection.value
                ):
                    feedback.text = "The confirmation does not match."
                    return
                try:
                    result = await page.api.mutate(
                        REQUEST,
                        "requestReplay",
                        {"p": projection.value, "m": mode.value, "why": reason.value.strip()},
                    )
                except ApiError as error:
                    feedback.text = error.message
                    return
                ui.notify(f"Replay queued: {result['replay']['replayId']}", type="positive")
                page.go()

            button = ui.button("Queue replay", icon="play_arrow", on_click=submit).mark(
                "replay-submit"
            )
            if not allowed:
                button.disable()
        with theme.card("Runs", classes="flex-1 min-w-0"):
            panel = theme.PanelState(empty="No replay has run in this tenant yet.")
    if not allowed:
        panel.show(lambda: None, 0, "Replays are visible to admin keys.")
        return
    try:
        runs = (await page.api.query(RUNS))["replays"]
    except ApiError as error:
        panel.error(error.message)
        return
    by_id = {run["replayId"]: run for run in runs}

    async def cancel(replay_id: str) -> None:
        try:
            await page.api.mutate(CANCEL, "cancelReplay", {"id": replay_id})
        except ApiError as error:
            ui.notify(error.message, type="negative")
            return
        ui.notify(f"Replay cancelled: {replay_id}")

    def draw() -> None:
        for run in by_id.values():
            draw_run(run, cancel)

    panel.show(draw, len(by_id))

    def on_update(data: dict[str, Any]) -> None:
        update = data["replay"]
        by_id[update["replayId"]] = update
        panel.show(draw, len(by_id))

    def variables(replay_id: str) -> Callable[[], dict[str, str]]:
        return lambda: {"id": replay_id}

    for run in runs:
        if run["status"] in ("QUEUED", "RUNNING"):
            page.live(LIVE, variables(run["replayId"]), on_update)
