"""The operator console: a NiceGUI app, its own process, a client of the GraphQL API only.

Sign in with an API key; the key stays in NiceGUI's server-side user storage (the browser
holds only a signed session cookie), never in a URL. Every screen is one URL,
`/?tenant=&view=&trace_id=&workflow_id=...`, so every state has a link, including the
release demo's (spec/platform.md §7.7). Each tab's live subscriptions are cancelled when the
tab goes away.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from nicegui import app, ui

from ui import theme
from ui.api import ApiError, ConsoleApi, Viewer, sign_in
from ui.config import ConsoleConfig
from ui.page import VIEWS, Page
from ui.views import (
    graph,
    inbox,
    overview,
    precedents,
    replays,
    simulation,
    status,
    stream,
    traces,
)

_log = logging.getLogger(__name__)

RENDERERS: dict[str, Callable[[Page], Awaitable[None]]] = {
    "overview": overview.render,
    "traces": traces.render,
    "graph": graph.render,
    "precedents": precedents.render,
    "inbox": inbox.render,
    "replays": replays.render,
    "simulation": simulation.render,
    "stream": stream.render,
    "status": status.render,
}

_config: ConsoleConfig | None = None


def config() -> ConsoleConfig:
    global _config
    if _config is None:
        _config = ConsoleConfig.from_env()
    return _config


def configure(settings: ConsoleConfig) -> None:
    global _config
    _config = settings


def _viewer_from_storage() -> tuple[str, Viewer] | None:
    stored = app.storage.user.get("session")
    if not isinstance(stored, dict):
        return None
    data = stored.get("viewer", {})
    viewer = Viewer(
        key_id=data.get("key_id", ""),
        name=data.get("name", ""),
        roles=tuple(data.get("roles", ())),
        permissions=frozenset(data.get("permissions", ())),
        tenants=tuple(data.get("tenants", ())),
    )
    return stored["token"], viewer


def _default_view(params: dict[str, str]) -> str:
    if params.get("workflow_id"):
        return "inbox"
    if params.get("trace_id"):
        return "traces"
    return "overview"


async def signin_page(next: str = "/") -> None:
    theme.install()
    with (
        ui.column().classes("w-full items-center pt-24"),
        ui.column().classes("dg-card w-[440px] gap-4 p-8"),
    ):
        with ui.row().classes("items-center gap-3"):
            ui.icon("account_tree", size="lg").style(f"color:{theme.TEAL}")
            with ui.column().classes("gap-0"):
                ui.label("DecisionGraph").classes("text-2xl font-semibold")
                ui.label("Operator console").classes("dg-muted")
        token = ui.input("API key", password=True, password_toggle_button=True).props("outlined")
        token.classes("w-full").mark("signin-token")
        problem = ui.label().classes("text-sm").style(f"color:{theme.CRIMSON}")
        problem.mark("signin-problem")

        async def submit() -> None:
            text = (token.value or "").strip()
            if not text:
                problem.text = "Paste an API key (decisiongraph keys create …)."
                return
            try:
                viewer = await sign_in(config().api_url, text)
            except ApiError as error:
                problem.text = f"Sign-in refused: {error.message}"
                return
            app.storage.user["session"] = {
                "token": text,
                "viewer": {
                    "key_id": viewer.key_id,
                    "name": viewer.name,
                    "roles": list(viewer.roles),
                    "permissions": sorted(viewer.permissions),
                    "tenants": list(viewer.tenants),
                },
            }
            ui.navigate.to(next if next.startswith("/") else "/")

        token.on("keydown.enter", submit)
        ui.button("Sign in", icon="login", on_click=submit).classes("w-full").mark("signin-submit")
        ui.label(
            "The key is kept on the console server for this browser session; it never "
            "appears in a URL."
        ).classes("text-xs dg-muted")


def signout_page() -> None:
    app.storage.user.pop("session", None)
    ui.navigate.to("/signin")


async def console_page(
    tenant: str | None = None,
    view: str | None = None,
    trace_id: str | None = None,
    workflow_id: str | None = None,
    node: str | None = None,
    depth: str | None = None,
    types: str | None = None,
    compare: str | None = None,
    open: str | None = None,
    overdue: str | None = None,
) -> None:
    theme.install()
    session = _viewer_from_storage()
    params = {
        k: v
        for k, v in {
            "trace_id": trace_id, "workflow_id": workflow_id, "node": node, "depth": depth,
            "types": types, "compare": compare, "open": open, "overdue": overdue,
        }.items()
        if v
    }  # fmt: skip
    if session is None:
        from urllib.parse import quote

        query = "&".join(f"{k}={quote(v)}" for k, v in ({"tenant": tenant or ""} | params).items())
        ui.navigate.to(f"/signin?next={quote('/?' + query)}")
        return
    token, viewer = session
    chosen = tenant or (viewer.tenants[0] if viewer.tenants else "")
    if chosen not in viewer.tenants and viewer.tenants:
        with ui.column().classes("w-full items-center pt-24"):
            theme.chip(f"This key cannot use tenant {chosen!r}", "alert", "block")
            ui.link("Choose another tenant", "/")
        return
    current = view if view in VIEWS else _default_view(params)
    page = Page(
        api=ConsoleApi(config().api_url, token, chosen or None),
        viewer=viewer,
        tenant=chosen,
        view=current,
        params=params,
    )
    client = ui.context.client
    client.on_delete(page.close)
    _frame(page)
    with ui.column().classes("w-full p-6 gap-4 max-w-[1500px] mx-auto"):
        await RENDERERS[current](page)


def _frame(page: Page) -> None:
    with ui.header().classes("dg-header items-center gap-4 px-6 py-2"):
        ui.icon("account_tree", size="md")
        ui.label("DecisionGraph").classes("text-lg font-semibold")
        ui.label(VIEWS[page.view][0]).classes("text-sm opacity-70")
        ui.space()
        tenant = ui.select(list(page.viewer.tenants) or [page.tenant], value=page.tenant).props(
            "dense dark outlined options-dense"
        )
        tenant.classes("min-w-[200px]").mark("tenant-switcher")
        tenant.on_value_change(lambda e: ui.navigate.to(f"/?tenant={e.value}&view={page.view}"))
        with ui.row().classes("items-center gap-2"):
            ui.icon("key", size="sm")
            ui.label(f"{page.viewer.name} · {page.viewer.role_label}").classes("text-sm")
        ui.button(icon="logout", on_click=lambda: ui.navigate.to("/signout")).props(
            "flat round dense color=white"
        ).tooltip("Sign out")
    with (
        ui.left_drawer(value=True, fixed=True)
        .classes("bg-white dg-nav")
        .props("width=220 bordered"),
        ui.column().classes("w-full gap-1 pt-2"),
    ):
        for key, (label, icon) in VIEWS.items():
            active = key == page.view
            button = ui.button(label, icon=icon, on_click=lambda _, k=key: page.go(view=k))
            button.props(
                "flat align=left no-caps" + (" color=primary" if active else " color=grey-9")
            )
            button.classes("w-full" + (" dg-selected" if active else "")).mark(f"nav-{key}")
        ui.separator().classes("my-2")
        if page.trace_id:
            ui.label("selected trace").classes("dg-card-title px-3")
            ui.label(page.trace_id).classes("dg-mono px-3 break-all")
        if page.workflow_id:
            ui.label("selected review").classes("dg-card-title px-3 pt-2")
            ui.label(page.workflow_id).classes("dg-mono px-3 break-all text-xs")


def healthz() -> dict[str, str]:
    return {"status": "ok"}


def register() -> None:
    """Add the console's routes to NiceGUI (again after a test resets its globals)."""
    ui.page("/signin")(signin_page)
    ui.page("/signout")(signout_page)
    ui.page("/")(console_page)
    app.get("/healthz")(healthz)


def run(settings: ConsoleConfig | None = None) -> None:
    """`decisiongraph ui`: serve the console until interrupted."""
    configure(settings or ConsoleConfig.from_env())
    settings = config()
    register()
    ui.run(
        host=settings.host,
        port=settings.port,
        title="DecisionGraph console",
        storage_secret=settings.storage_secret,
        reload=False,
        show=False,
        favicon="🧭",
        reconnect_timeout=10.0,
    )
