"""The console in NiceGUI's user simulation, against the real server in this process.

The console talks to the server over GraphQL exactly as in production; only the transport
is in-process (httpx-ws's ASGI transport, HTTP and websockets). The worker runs beside it,
so projections, workflows and SLA timers behave as they do in production.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from httpx_ws.transport import ASGIWebSocketTransport
from litestar import Litestar
from nicegui.storage import Storage
from nicegui.testing.user import User
from nicegui.testing.user_simulation import user_simulation

from server.demo.release_demo import release_demo_events
from tests.support import GraphQLClient
from ui import api
from ui.app import configure
from ui.config import ConsoleConfig

MAIN = Path(__file__).with_name("console_main.py")
Storage.path = Path(tempfile.mkdtemp(prefix="dg-console-storage-"))


@pytest.fixture
async def demo(gql: GraphQLClient, worker: asyncio.Task[None]) -> str:
    """The release demo in this test's tenant, projected and with its SLA escalations."""
    stored = await gql.append_ok(release_demo_events())
    for _ in range(100):  # the worker's timer escalates the two overdue reviews
        data = await gql.data(
            "query($n: Long) { workflows(onlyOpen: true, atLeast: $n) { summary { escalated } } }",
            {"n": stored[-1]["logSeq"]},
        )
        if data["workflows"]["summary"]["escalated"] == 2:
            break
        await asyncio.sleep(0.1)
    assert gql.tenant is not None
    return gql.tenant


@pytest.fixture
async def user(app: Litestar, worker: asyncio.Task[None]) -> AsyncIterator[User]:
    """A simulated browser on the console; the backend outlives it (fixture order)."""
    api.transport_factory = lambda: ASGIWebSocketTransport(app=app)
    configure(ConsoleConfig(api_url="http://test", host="127.0.0.1", port=0, storage_secret="t"))
    try:
        async with user_simulation(main_file=MAIN) as simulated:
            yield simulated
    finally:
        api.transport_factory = None


async def sign_in(user: User, token: str) -> None:
    await user.open("/signin")
    user.find(marker="signin-token").type(token)
    user.find(marker="signin-submit").click()
    await user.should_see(marker="nav-overview", retries=50)
