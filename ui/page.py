"""One browser tab's view of the console: who signed in, which tenant and selection (all in
the URL, so every state has a link), and the tab's live subscriptions."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from nicegui import background_tasks, ui

from ui.api import ApiError, ConsoleApi, SubscriptionError, Viewer

_log = logging.getLogger(__name__)

VIEWS = {
    "overview": ("Overview", "dashboard"),
    "traces": ("Traces", "timeline"),
    "graph": ("Context graph", "hub"),
    "precedents": ("Precedents", "compare_arrows"),
    "inbox": ("Review inbox", "inbox"),
    "replays": ("Replays", "replay"),
    "simulation": ("Policy simulation", "science"),
    "stream": ("Live stream", "bolt"),
    "status": ("Status", "monitor_heart"),
}

OnData = Callable[[dict[str, Any]], Awaitable[None] | None]


@dataclass
class Page:
    api: ConsoleApi
    viewer: Viewer
    tenant: str
    view: str
    params: dict[str, str] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def trace_id(self) -> str | None:
        return self.params.get("trace_id") or None

    @property
    def workflow_id(self) -> str | None:
        return self.params.get("workflow_id") or None

    def link(self, **changes: str | None) -> str:
        """The URL of this page with some parameters changed (None removes one)."""
        query = {"tenant": self.tenant, "view": self.view, **self.params}
        for key, value in changes.items():
            if value is None:
                query.pop(key, None)
            else:
                query[key] = value
        return "/?" + urlencode({k: v for k, v in query.items() if v})

    def go(self, **changes: str | None) -> None:
        ui.navigate.to(self.link(**changes))

    def can(self, permission: str) -> bool:
        return self.viewer.can(permission)

    def why_not(self, permission: str) -> str:
        role = {"review": "reviewer or admin", "admin": "admin", "append": "writer"}[permission]
        return f"Needs the {role} role; this key has: {self.viewer.role_label}"

    def live(
        self,
        query: str,
        variables: Callable[[], Mapping[str, Any]],
        on_data: OnData,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        """Follow a subscription for as long as the tab is open, reconnecting (and resuming
        from `variables()`, which reads the last position seen) when the link drops."""
        task = background_tasks.create(
            self._follow(query, variables, on_data, on_error),
            name=f"console-live-{len(self.tasks)}",
        )
        self.tasks.append(task)

    async def _follow(
        self,
        query: str,
        variables: Callable[[], Mapping[str, Any]],
        on_data: OnData,
        on_error: Callable[[str], None] | None,
    ) -> None:
        pause = 0.5
        while True:
            try:
                # aclosing: a tab closed while `on_data` runs must close the subscription in
                # this task; left to the garbage collector, its connection's cancel scope
                # would be exited from another task.
                async with contextlib.aclosing(self.api.subscribe(query, variables())) as feed:
                    async for data in feed:
                        pause = 0.5
                        result = on_data(data)
                        if inspect.isawaitable(result):
                            await result
                return  # the server completed it (a finished trace, an ended replay)
            except asyncio.CancelledError:
                raise
            except SubscriptionError as error:
                if error.code is not None:  # refused for good: say why, stop
                    if on_error is not None:
                        on_error(str(error))
                    return
            except (ApiError, OSError, RuntimeError) as error:
                _log.debug("live link dropped: %s", error)
            except Exception:  # keep the tab alive; the next attempt may work
                _log.warning("live update failed", exc_info=True)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)

    def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        self.tasks.clear()

    async def close(self) -> None:
        self.stop()
        with contextlib.suppress(Exception):
            await self.api.aclose()
